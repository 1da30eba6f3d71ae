"""Publishes waves of commands to Kafka and waits until the services answered every one.

Each command is answered by events carrying its id as `correlationid` (its applied event(s)
or `command.rejected`), so waiting means watching the events topics, never sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .commands import Command

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class Answers:
    """Every event seen on the watched topics, grouped by the command that caused it."""

    by_command: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds from send to first answer
    sent_at: dict[str, float] = field(default_factory=dict)

    def add(self, event: dict[str, Any]) -> None:
        cid = event.get("correlationid")
        if cid is None:
            return
        answers = self.by_command.setdefault(cid, [])
        if not answers and cid in self.sent_at:
            self.latencies.append(time.monotonic() - self.sent_at[cid])
        answers.append(event)

    def rejections(self) -> list[dict[str, Any]]:
        return [e for events in self.by_command.values() for e in events if e["type"] == "command.rejected"]


class Publisher:
    def __init__(self, bootstrap: str, *, prefix: str = "", source: str = "scenario", **kafka: Any) -> None:
        self._bootstrap, self._prefix, self._source, self._kafka = bootstrap, prefix, source, kafka
        self.answers = Answers()

    async def __aenter__(self) -> Publisher:
        topics = [self._prefix + t for t in ("membership.events", "evaluation.events", "feedback.events")]
        self._consumer = AIOKafkaConsumer(*topics, bootstrap_servers=self._bootstrap, auto_offset_reset="latest",
                                          enable_auto_commit=False, **self._kafka)
        await self._consumer.start()
        while not self._consumer.assignment():  # only events after this point are ours
            await asyncio.sleep(0.05)
        await self._consumer.seek_to_end()
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, enable_idempotence=True, linger_ms=10,
                                          max_batch_size=256 * 1024, **self._kafka)
        await self._producer.start()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._producer.stop()
        await self._consumer.stop()

    async def _read(self) -> None:
        async for record in self._consumer:
            self.answers.add(orjson.loads(record.value))

    async def send(self, commands: Sequence[Command], progress: Progress | None = None) -> None:
        futures = []
        for i, command in enumerate(commands, 1):
            key = command.key.encode() if command.key else None
            self.answers.sent_at[command.id] = time.monotonic()
            futures.append(await self._producer.send(self._prefix + command.topic,
                                                     command.value(self._source, command.id), key=key))
            if progress and i % 500 == 0:
                progress("publish", i, len(commands))
        await asyncio.gather(*futures)
        if progress:
            progress("publish", len(commands), len(commands))

    async def wait_answered(self, commands: Sequence[Command], timeout: float = 120,
                            progress: Progress | None = None) -> None:
        ids = [c.id for c in commands]
        deadline = time.monotonic() + timeout
        while True:
            done = sum(1 for i in ids if i in self.answers.by_command)
            if progress:
                progress("answered", done, len(ids))
            if done == len(ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - done} of {len(ids)} commands unanswered after {timeout}s")
            await asyncio.sleep(0.1)

    async def play(self, waves: Sequence[Sequence[Command]], timeout: float = 120,
                   progress: Progress | None = None) -> None:
        """Sends wave after wave, each once the one before is fully answered."""
        for wave in waves:
            await self.send(wave, progress)
            await self.wait_answered(wave, timeout, progress)
