"""Two PostgreSQL transactions at once, one holding a command for a prerequisite, the other
providing it: neither sees the other's rows. Whichever commits last, the command is applied
at the timer's next round, however long the two took (the harness of
tests/unit/runtime/test_pipeline.py, on a real PostgreSQL database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import nullcontext
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support import command
from tests.unit.runtime.test_pipeline import UNION, Harness, enroll, metadata, provides, runtime
from unionhub_runtime import holding
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.holding import Holding

pytestmark = pytest.mark.integration


@pytest.fixture
async def harness(databases) -> AsyncIterator[Harness]:
    engine = create_engine(await databases())
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield Harness(engine, session_factory(engine))
    await engine.dispose()


class Paused:
    """Stops the transaction that reaches `HoldContext.<method>` right after it, until `go`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
        self.reached, self.go = asyncio.Event(), asyncio.Event()
        original = getattr(holding.HoldContext, method)

        async def paused(context: holding.HoldContext, *args: object, **kwargs: object) -> object:
            result = await original(context, *args, **kwargs)
            if not self.go.is_set():
                self.reached.set()
                await self.go.wait()
            return result

        monkeypatch.setattr(holding.HoldContext, method, paused)


async def timer_round(harness: Harness, held: Holding) -> None:
    async def write(_session: AsyncSession, _outgoing: list[object]) -> None:
        return None

    await held.retry_round(harness.sessions, nullcontext(), write, lambda: None)


def race(harness: Harness) -> tuple[Holding, object]:
    # A window of 0 s: the RetrySchedule alone would never look at a row again once a round
    # began after it was held (as with transactions longer than its 60 s in production).
    held = Holding(
        runtime,
        hold_seconds=600,
        provides=provides,
        metrics=harness.metrics,
        clock=lambda: datetime.now(UTC),
        recheck_seconds=0,
    )
    pipeline = harness.pipeline(holding=held)
    return held, pipeline


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_command_held_while_its_prerequisite_commits_is_applied_when_the_holder_commits_last(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, pipeline = race(harness)
    await timer_round(harness, held)  # the instance's first round: every row is a candidate once
    holder = Paused(monkeypatch, "hold")
    holding_task = asyncio.create_task(pipeline.process(harness.records(enroll("m-1"))))
    await holder.reached.wait()
    # The union is registered and committed meanwhile: its release does not see the held row.
    await pipeline.process(harness.records(command("union.register", UNION)))
    await timer_round(harness, held)
    holder.go.set()
    await holding_task
    assert await harness.held() != []
    await timer_round(harness, held)
    assert await harness.enrolled() == ["m-1"] and await harness.held() == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_command_held_while_its_prerequisite_commits_is_applied_when_the_provider_commits_last(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, pipeline = race(harness)
    await timer_round(harness, held)
    holder = Paused(monkeypatch, "hold")
    holding_task = asyncio.create_task(pipeline.process(harness.records(enroll("m-1"))))
    await holder.reached.wait()
    provider = Paused(monkeypatch, "release")  # after applying and releasing, before committing
    providing_task = asyncio.create_task(pipeline.process(harness.records(command("union.register", UNION))))
    await provider.reached.wait()
    holder.go.set()
    await holding_task
    await timer_round(harness, held)  # the holder's recheck: the union is not committed yet
    assert await harness.held() != []
    provider.go.set()
    await providing_task
    await timer_round(harness, held)
    assert await harness.enrolled() == ["m-1"] and await harness.held() == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_recheck_of_thousands_of_keys_and_rows_is_two_statements(harness: Harness) -> None:
    """Every command a batch applies provides keys (a member enrolled provides the member):
    tens of thousands a minute at full rate, all rechecked by the next timer round. One
    statement for the keys and one for the rows, whatever their number (an `IN` list of 500
    at a time was 60 statements, each rendering 500 parameters, for 30,000 enrolments)."""
    held, pipeline = race(harness)
    await pipeline.process(harness.records(enroll("m-1")))  # waits for union:bj
    [(_, waiting_for)] = await harness.held()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    keys = {f"member:m-{n}" for n in range(1_700)} | {str(waiting_for)}
    async with harness.sessions() as session:
        seq = (await session.execute(select(runtime.held.c.seq))).scalar_one()
        event.listen(harness.engine.sync_engine, "before_cursor_execute", count)
        try:
            by_key = await held._still_held(session, set(), keys)
            by_seq = await held._still_held(session, set(range(seq + 1, seq + 1_300)) | {seq}, set())
            neither = await held._still_held(
                session, set(range(seq + 1, seq + 900)), {f"member:x-{n}" for n in range(900)}
            )
        finally:
            event.remove(harness.engine.sync_engine, "before_cursor_execute", count)
    assert by_key == {seq} and by_seq == {seq} and neither == set()
    assert len(statements) == 4, statements
