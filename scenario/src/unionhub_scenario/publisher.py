"""Publishes the outside systems' commands with the contracts' client and follows the answers.

Each outside system is a sender of its own (its CloudEvents `source`, its own client), and
each command is answered by events carrying its id as `correlationid` and its sender as
`correlationsource` (its applied event(s), or `command.rejected`, after a `command.held`
when it had to wait), so waiting means watching the events topics, never sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from unionhub_contracts.client import Answer, CommandClient, Sent

from .commands import Command, Feed

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class Publisher:
    def __init__(self, bootstrap: str, *, prefix: str = "", source: str = "scenario", **kafka: Any) -> None:
        self._bootstrap, self._prefix, self._source, self._kafka = bootstrap, prefix, source, kafka
        self._clients: dict[str, CommandClient] = {}
        self._stack = contextlib.AsyncExitStack()
        self._sent: dict[str, Sent] = {}

    async def __aenter__(self) -> Publisher:
        await self._client(self._source)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _client(self, source: str) -> CommandClient:
        """The sender `source`, started on first use (it reads answers from then on)."""
        if source not in self._clients:
            client = CommandClient(self._bootstrap, source=source, topic_prefix=self._prefix, **self._kafka)
            self._clients[source] = await self._stack.enter_async_context(client)
        return self._clients[source]

    def _answer(self, command_id: str) -> Answer | None:
        sent = self._sent.get(command_id)
        return None if sent is None else self._clients[sent.source].answers.get(sent.correlation_id)

    @property
    def answers(self) -> dict[str, Answer]:
        """The answers so far, by command id."""
        return {c: a for c in self._sent if (a := self._answer(c)) is not None}

    def answered(self, command: Command) -> bool:
        answer = self._answer(command.id)
        return answer is not None and answer.final

    def latencies(self) -> list[float]:
        """Seconds from each command's acknowledgement by the broker to its final answer."""
        return sorted(a.first_at - self._sent[c].sent_at for c, a in self.answers.items() if a.first_at is not None)

    def holds(self) -> list[float]:
        """Seconds each held command waited, from its `command.held` to its final answer
        (both stamped by the service that held it)."""
        waited = []
        for answer in self.answers.values():
            held = next((e for e in answer.events if e["type"] == "command.held"), None)
            final = next((e for e in answer.events if e["type"] != "command.held"), None)
            if held is not None and final is not None:
                waited.append(
                    (datetime.fromisoformat(final["time"]) - datetime.fromisoformat(held["time"])).total_seconds()
                )
        return sorted(waited)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for a in self.answers.values() for e in a.events if e["type"] == event_type]

    async def send(
        self, commands: Sequence[Command], progress: Progress | None = None, *, source: str | None = None
    ) -> None:
        """Sends `commands` in order as `source` without waiting for answers (the broker's acks only)."""
        client = await self._client(source or self._source)
        pending = []
        for i, command in enumerate(commands, 1):
            pending.append(await client.enqueue(command.type, command.data, id=command.id))
            if progress and i % 500 == 0:
                progress("publish", i, len(commands))
        for sent in await asyncio.gather(*pending):
            self._sent[sent.id] = sent
        if progress:
            progress("publish", len(commands), len(commands))

    async def wait_answered(
        self, commands: Sequence[Command], timeout: float = 120, progress: Progress | None = None
    ) -> None:
        by_source: dict[str, list[Sent]] = {}
        for command in commands:
            sent = self._sent[command.id]
            by_source.setdefault(sent.source, []).append(sent)
        done = dict.fromkeys(by_source, 0)

        def report(source: str) -> Callable[[int, int], None]:
            def counted(answered: int, _total: int) -> None:
                done[source] = answered
                if progress is not None:
                    progress("answered", sum(done.values()), len(commands))

            return counted

        await asyncio.gather(*(self._clients[s].wait_all(sent, timeout, report(s)) for s, sent in by_source.items()))

    async def stream(self, feeds: Sequence[Feed], timeout: float = 120, progress: Progress | None = None) -> None:
        """Publishes the feeds at the same time, each as one continuous stream in its order
        (no waiting for answers inside a feed), then waits until every command is answered."""
        for feed in feeds:
            await self._client(feed.source)  # every sender reads answers before anyone sends
        published = dict.fromkeys(range(len(feeds)), 0)
        total = sum(len(f.commands) for f in feeds)

        def counted(i: int) -> Progress:
            def step(_phase: str, done: int, _total: int) -> None:
                published[i] = done
                if progress is not None:
                    progress("publish", sum(published.values()), total)

            return step

        await asyncio.gather(*(self.send(f.commands, counted(i), source=f.source) for i, f in enumerate(feeds)))
        await self.wait_answered([c for f in feeds for c in f.commands], timeout, progress)

    async def play(
        self, waves: Sequence[Sequence[Command]], timeout: float = 120, progress: Progress | None = None
    ) -> None:
        """Sends wave after wave, each once the one before is fully answered."""
        for wave in waves:
            await self.send(wave, progress)
            await self.wait_answered(wave, timeout, progress)
