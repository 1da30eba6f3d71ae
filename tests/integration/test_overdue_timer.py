"""Feedback's overdue timer on the events clock while a batch of commands is under way
(test_live_feeds failed once in ~4 full runs with two opinions flagged overdue whose answers
had come in time)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from feedback.adapters import orm
from feedback.adapters.metrics import FeedbackMetrics
from feedback.bootstrap import MIGRATIONS
from feedback.entrypoints.consumers import Consumers
from feedback.service_layer.handlers import Dependencies
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.migrations import upgrade_async

pytestmark = pytest.mark.integration

SUBMITTED = datetime(2018, 11, 1, 1, tzinfo=UTC)


@pytest.fixture
async def overdue_feed(databases) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Consumers]]:
    """Opinion op-1, unanswered and 30 days past due on the events clock; the timer with no
    quiet period (only a batch under way stands in its way)."""
    url = await databases()
    await upgrade_async(MIGRATIONS, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    consumers = Consumers(
        Dependencies(now=lambda: SUBMITTED, deadline=timedelta(days=7)),
        FeedbackMetrics(CollectorRegistry()),
        "events",
        quiet_seconds=0,
    )
    try:
        async with sessions() as session, session.begin():
            await session.execute(insert(orm.opinions).values(**_opinion("op-1")))
            await session.execute(insert(orm.stream_clock).values(name="events", at=SUBMITTED + timedelta(days=30)))
        yield sessions, consumers
    finally:
        await engine.dispose()


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_no_opinion_is_flagged_overdue_while_a_batch_that_may_answer_it_is_under_way(overdue_feed) -> None:
    """A batch that read an answer holds it (its responder's appointment not known yet) or
    applies it; until it commits, neither shows. However long it takes, the timer waits for it,
    and for the quiet period after it, before flagging by business time."""
    sessions, consumers = overdue_feed
    async with sessions() as batch, batch.begin():
        consumers.commands(batch)  # a batch under way: its answer to op-1 not committed yet
        async with sessions() as timer, timer.begin():
            assert await consumers.mark_overdue(timer, datetime.now(UTC)) == []
    async with sessions() as timer, timer.begin():  # the batch ended: flagged now
        assert [e.type for e in await consumers.mark_overdue(timer, datetime.now(UTC))] == ["opinion.overdue"]
    async with sessions() as session:
        assert (await session.execute(select(orm.opinions.c.overdue))).scalar_one() is True


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_a_session_that_ran_commands_and_is_gone_does_not_stop_the_timer(overdue_feed) -> None:
    """A session whose transaction never reports its end (a task cancelled while its connection
    was checked in at shutdown, a scope built outside a transaction) is no batch under way once
    it is gone: the timer must not wait for it for good (it was counted under way forever)."""
    sessions, consumers = overdue_feed
    consumers.commands(sessions())  # a scope built outside a transaction, then dropped
    gc.collect()
    async with sessions() as timer, timer.begin():
        assert [e.type for e in await consumers.mark_overdue(timer, datetime.now(UTC))] == ["opinion.overdue"]


def _opinion(opinion_id: str) -> dict[str, object]:
    return {
        "opinion_id": opinion_id,
        "member_id": "m-1",
        "channel": "hotline",
        "text": "The lift is broken",
        "submitted_at": SUBMITTED,
        "union_id": "u-1",
        "due_at": SUBMITTED + timedelta(days=7),
        "status": "assigned",
        "overdue": False,
    }
