"""Durable timers: periodic jobs over state kept in the database.

A job finds what is due (deadlines are rows, so they survive restarts and fire for what
fell due while the service was down), changes it and returns the events to publish, all
in one transaction with the outbox. On PostgreSQL an advisory lock runs each job on one
instance at a time, so nothing fires twice.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import failpoints, outbox
from .logs import describe_error
from .scopes import Emit
from .tables import RuntimeTables

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Job = Callable[[AsyncSession, datetime], Awaitable[Sequence[Emit]]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Timer:
    name: str
    every_seconds: float
    job: Job


class TimerRunner:
    def __init__(
        self,
        *,
        timers: Sequence[Timer],
        sessions: async_sessionmaker[AsyncSession],
        tables: RuntimeTables,
        events_topic: str,
        encode: Callable[[Emit], Any],
        on_commit: Callable[[], None],
        clock: Clock = utc_now,
        write_lock: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._timers = timers
        self._sessions = sessions
        self._tables = tables
        self._events_topic = events_topic
        self._encode = encode
        self._on_commit = on_commit
        self._clock = clock
        self._write_lock = write_lock or nullcontext()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(t), name=f"timer-{t.name}") for t in self._timers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def fire(self, timer: Timer) -> int:
        """Runs `timer`'s job once now; returns how many events it published."""
        async with self._write_lock, self._sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                key = zlib.crc32(timer.name.encode())
                if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}):
                    return 0  # another instance runs it right now
            emitted = await timer.job(session, self._clock())
            await outbox.write(
                session, self._tables, self._events_topic, [outbox.Pending(self._encode(e)) for e in emitted]
            )
            if emitted:
                failpoints.hit("timer.wrote")  # a crash inside a timer's transaction, before its commit
        if emitted:
            self._on_commit()
        return len(emitted)

    async def _loop(self, timer: Timer) -> None:
        while True:
            try:
                await self.fire(timer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("timer %s failed: %s", timer.name, describe_error(exc))
            await asyncio.sleep(timer.every_seconds)
