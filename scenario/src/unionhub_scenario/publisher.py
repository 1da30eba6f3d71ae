"""Publishes the outside systems' commands with the contracts' client and follows the answers.

Each command is answered by events carrying its id as `correlationid` and the scenario as
`correlationsource` (its applied event(s) or `command.rejected`), so waiting means
watching the events topics, never sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from unionhub_contracts.client import Answer, CommandClient, Sent

from .commands import Command

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class Publisher:
    def __init__(self, bootstrap: str, *, prefix: str = "", source: str = "scenario", **kafka: Any) -> None:
        self._client = CommandClient(bootstrap, source=source, topic_prefix=prefix, **kafka)
        self._sent: dict[str, Sent] = {}

    async def __aenter__(self) -> Publisher:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(*exc)

    @property
    def answers(self) -> dict[str, Answer]:
        """The answers so far, by command id."""
        return self._client.answers

    def answered(self, command: Command) -> bool:
        answer = self._client.answers.get(command.id)
        return answer is not None and answer.final

    def latencies(self) -> list[float]:
        """Seconds from each command's acknowledgement by the broker to its final answer."""
        return sorted(a.first_at - self._sent[c].sent_at for c, a in self._client.answers.items()
                      if a.first_at is not None and c in self._sent)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for a in self._client.answers.values() for e in a.events if e["type"] == event_type]

    async def send(self, commands: Sequence[Command], progress: Progress | None = None) -> None:
        """Sends `commands` in order without waiting for answers (the broker's acks only)."""
        pending = []
        for i, command in enumerate(commands, 1):
            pending.append(await self._client.enqueue(command.type, command.data, id=command.id))
            if progress and i % 500 == 0:
                progress("publish", i, len(commands))
        for sent in await asyncio.gather(*pending):
            self._sent[sent.id] = sent
        if progress:
            progress("publish", len(commands), len(commands))

    async def wait_answered(self, commands: Sequence[Command], timeout: float = 120,
                            progress: Progress | None = None) -> None:
        await self._client.wait_all((self._sent[c.id] for c in commands), timeout,
                                    None if progress is None else lambda done, total: progress("answered", done, total))

    async def play(self, waves: Sequence[Sequence[Command]], timeout: float = 120,
                   progress: Progress | None = None) -> None:
        """Sends wave after wave, each once the one before is fully answered."""
        for wave in waves:
            await self.send(wave, progress)
            await self.wait_answered(wave, timeout, progress)
