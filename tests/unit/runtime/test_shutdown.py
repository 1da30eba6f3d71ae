"""A service's stop is bounded: a part that hangs or fails is abandoned, the rest still stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from unionhub_runtime import shutdown
from unionhub_runtime.shutdown import stop_in_order


async def test_a_hanging_part_is_abandoned_at_the_deadline_and_the_later_parts_still_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutdown, "LAST_CHANCE_SECONDS", 0.05)
    stopped: list[str] = []
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()  # a LeaveGroup to a broker that never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def part(name: str) -> None:
        stopped.append(name)

    started = time.monotonic()
    unclean = await stop_in_order(
        [("first", lambda: part("first")), ("consumers", hangs), ("producer", lambda: part("producer"))], 0.2
    )
    took = time.monotonic() - started

    assert unclean == ["consumers"]
    assert stopped == ["first", "producer"]
    assert cancelled.is_set(), "the hanging part was left running"
    assert 0.2 <= took < 1.0


async def test_a_part_that_fails_is_reported_and_does_not_stop_the_next() -> None:
    stopped: list[str] = []

    async def fails() -> None:
        raise ConnectionResetError("broker gone")

    async def pool() -> None:
        stopped.append("database pool")

    assert await stop_in_order([("producer", fails), ("database pool", pool)], 1.0) == ["producer"]
    assert stopped == ["database pool"]


async def test_parts_reached_after_the_deadline_still_get_their_last_chance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutdown, "LAST_CHANCE_SECONDS", 0.1)
    stopped: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(0.05)  # well inside a last chance, but past the whole deadline
        stopped.append("database pool")

    async def hangs() -> None:
        await asyncio.Event().wait()

    assert await stop_in_order([("consumers", hangs), ("database pool", slow)], 0.01) == ["consumers"]
    assert stopped == ["database pool"]
