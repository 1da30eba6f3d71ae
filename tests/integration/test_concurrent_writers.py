"""Timers and consumers writing the same rows at once on PostgreSQL (issue 14, finding 3):
what one transaction commits while another holds a stale read of it is never overwritten.

Each test runs the services' real handlers and repositories in many concurrent transactions
on a real PostgreSQL database (READ COMMITTED, as the services run), thousands of commands."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from types import ModuleType

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import evaluation.bootstrap
import feedback.bootstrap
from evaluation.adapters import orm as evaluation_orm
from evaluation.adapters.unit_of_work import SqlAlchemyUnitOfWork as EvaluationUnitOfWork
from evaluation.domain import commands as evaluation_commands
from evaluation.service_layer import handlers as evaluation_handlers
from evaluation.service_layer import messagebus as evaluation_messagebus
from feedback.adapters import orm as feedback_orm
from feedback.adapters.unit_of_work import SqlAlchemyUnitOfWork as FeedbackUnitOfWork
from feedback.domain import commands as feedback_commands
from feedback.domain import events as feedback_events
from feedback.domain import model as feedback_model
from feedback.service_layer import handlers as feedback_handlers
from feedback.service_layer import messagebus as feedback_messagebus
from unionhub_domain import Rejected
from unionhub_runtime.database import create_engine, is_transient
from unionhub_runtime.messagebus import MessageBus
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.unit_of_work import SessionUnitOfWork

pytestmark = pytest.mark.integration
NOW = datetime(2018, 6, 1, 12, 0, tzinfo=UTC)


Migrated = Callable[[ModuleType], Awaitable[async_sessionmaker[AsyncSession]]]


@pytest.fixture
async def postgresql(databases: Callable[[], Awaitable[str]]) -> AsyncIterator[Migrated]:
    """A fresh database migrated for a service (by its bootstrap module), with sessions on it."""
    engines = []

    async def migrated(service: ModuleType) -> async_sessionmaker[AsyncSession]:
        url = await databases()
        await upgrade_async(service.MIGRATIONS, url)
        engine = create_engine(url, pool_size=12)
        engines.append(engine)
        return async_sessionmaker(engine, expire_on_commit=False)

    yield migrated
    for engine in engines:
        await engine.dispose()


PostgresOnly = pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
EVALUATION_BUS = evaluation_messagebus.bus(evaluation_handlers.Dependencies(lambda: NOW))


async def apply(bus: MessageBus, uow: SessionUnitOfWork, command: object) -> list[object]:
    """One command in a batch's unit of work, as `CommandScope` runs it."""
    await uow.begin(command)
    try:
        emitted = await bus.handle(command, uow)
    except Rejected:
        await uow.discard()
        raise
    await uow.keep()
    return emitted


async def apply_alone(bus: MessageBus, uow: SessionUnitOfWork, command: object) -> list[object]:
    """A batch of one command."""
    emitted = await apply(bus, uow, command)
    await uow.flush()
    return emitted


async def transaction(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[object]]
) -> object:
    """Runs `work` in a transaction, again after a transient error (a deadlock), as the pipeline does."""
    for _ in range(20):
        try:
            async with sessions() as session, session.begin():
                return await work(session)
        except Exception as exc:
            if not is_transient(exc):
                raise
            await asyncio.sleep(random.uniform(0, 0.05))
    raise AssertionError("still failing after 20 attempts")


@PostgresOnly
async def test_the_overdue_timer_never_overwrites_an_answer_committed_meanwhile(postgresql: Migrated) -> None:
    sessions = await postgresql(feedback.bootstrap)
    count = 2_000
    async with sessions() as session, session.begin():
        await session.execute(
            insert(feedback_orm.membership_view.cadres).values(
                member_id="cadre-1", union_id="u1", role="full_time_cadre", appointed_on=date(2018, 1, 1)
            )
        )
        await session.execute(
            insert(feedback_orm.opinions),
            [
                {
                    "opinion_id": f"o-{n}",
                    "member_id": f"m-{n}",
                    "channel": "rating_page",
                    "text": "please",
                    "submitted_at": NOW - timedelta(days=16),
                    "campaign_id": None,
                    "home_id": None,
                    "category": None,
                    "union_id": "u1",
                    "due_at": NOW - timedelta(days=1, seconds=n),
                    "status": feedback_model.ASSIGNED,
                    "overdue": False,
                }
                for n in range(count)
            ],
        )
    bus = feedback_messagebus.bus(feedback_handlers.Dependencies(now=lambda: NOW, deadline=timedelta(days=15)))
    published: list[feedback_events.Event] = []

    def run(command: feedback_commands.Command) -> Callable[[AsyncSession], Awaitable[object]]:
        async def work(session: AsyncSession) -> None:
            emitted = await apply_alone(bus, FeedbackUnitOfWork(session), command)
            published.extend(emitted)  # a retried transaction raised before this line

        return work

    answering = True

    async def timer() -> None:
        while answering:
            await transaction(sessions, run(feedback_commands.MarkOverdue(NOW)))
            await asyncio.sleep(0.01)

    async def answer(ids: list[int]) -> None:
        for n in ids:
            await transaction(sessions, run(feedback_commands.RespondOpinion(f"o-{n}", "cadre-1", "done", NOW)))

    ticking = asyncio.create_task(timer())
    shuffled = random.Random(14).sample(range(count), count)
    await asyncio.gather(*(answer(shuffled[i::8]) for i in range(8)))
    answering = False
    await ticking

    async with sessions() as session:
        o = feedback_orm.opinions.c
        statuses = dict((await session.execute(select(o.status, func.count()).group_by(o.status))).all())
        not_overdue = await session.scalar(select(func.count()).where(o.overdue.is_(False)))
    assert statuses == {feedback_model.RESPONDED: count}, "an answer committed while the timer ran was overwritten"
    assert not_overdue == 0
    responded = [e for e in published if isinstance(e, feedback_events.OpinionResponded)]
    overdue = [e for e in published if isinstance(e, feedback_events.OpinionOverdue)]
    assert len(responded) == len({e.opinion_id for e in responded}) == count
    assert len(overdue) == len({e.opinion_id for e in overdue}) == count, "an opinion was flagged overdue twice"


CAMPAIGN = evaluation_commands.OpenCampaign(
    "c-2018",
    2018,
    "Stars 2018",
    {"member": 0.5, "unit": 0.3, "superior": 0.2},
    ("h1", "h2", "h3"),
    1,
    {"1": 1.0, "3": 3.0, "5": 4.5},
)


async def rating_world(postgresql: Migrated, members: int) -> async_sessionmaker[AsyncSession]:
    sessions = await postgresql(evaluation.bootstrap)
    view = evaluation_orm.membership_view
    async with sessions() as session, session.begin():
        await session.execute(insert(view.homes), [{"home_id": h, "union_id": "u1"} for h in CAMPAIGN.home_ids])
        await session.execute(
            insert(view.history),
            [{"member_id": f"m-{n}", "union_id": "u1", "from_on": date(2000, 1, 1)} for n in range(members)],
        )
        await apply_alone(EVALUATION_BUS, EvaluationUnitOfWork(session), CAMPAIGN)
    return sessions


def rating(n: int, home: str, at: datetime, score: int = 4) -> evaluation_commands.SubmitRating:
    scores = dict.fromkeys(("organisation", "facilities", "work", "labour_relations", "finances"), score)
    return evaluation_commands.SubmitRating(
        f"r-{n}-{home}-{at.timestamp()}", CAMPAIGN.campaign_id, home, "member", f"m-{n}", scores, at
    )


def batch_of(
    ratings: list[evaluation_commands.SubmitRating], accepted: list[str]
) -> Callable[[AsyncSession], Awaitable[object]]:
    """One consumer batch of ratings, as `CommandScope` runs it."""

    async def work(session: AsyncSession) -> None:
        uow = EvaluationUnitOfWork(session)
        await uow.preload(ratings)
        mine = []
        for command in ratings:
            try:
                await apply(EVALUATION_BUS, uow, command)
                mine.append(command.command_id)
            except Rejected:
                pass
        await uow.flush()
        accepted.extend(mine)  # only once the batch's writes went through

    return work


@PostgresOnly
async def test_a_rating_never_lands_in_a_campaign_closed_meanwhile(postgresql: Migrated) -> None:
    members = 3_000
    sessions = await rating_world(postgresql, members)
    ratings = [rating(n, CAMPAIGN.home_ids[n % 3], NOW) for n in range(members)]
    accepted: list[str] = []

    async def consumer(part: list[evaluation_commands.SubmitRating]) -> None:
        for start in range(0, len(part), 50):
            await transaction(sessions, batch_of(part[start : start + 50], accepted))

    async def close_midway() -> None:
        while len(accepted) < members // 3:
            await asyncio.sleep(0.005)
        await transaction(
            sessions,
            lambda session: apply_alone(
                EVALUATION_BUS, EvaluationUnitOfWork(session), evaluation_commands.CloseCampaign(CAMPAIGN.campaign_id)
            ),
        )

    await asyncio.gather(close_midway(), *(consumer(ratings[i::6]) for i in range(6)))

    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(evaluation_orm.ratings))
        counted = await session.scalar(select(func.sum(evaluation_orm.results.c.member_ratings)))
    assert members // 3 <= len(accepted) < members, "the close did not land in the middle of the ratings"
    assert stored == len(accepted), "a rating was stored but not answered accepted, or the other way round"
    assert counted == stored, f"{stored - counted} ratings landed in the campaign after its results were computed"


@PostgresOnly
async def test_an_older_rating_never_overwrites_a_newer_one_written_concurrently(postgresql: Migrated) -> None:
    members = 2_000
    sessions = await rating_world(postgresql, members)
    older = [rating(n, "h1", NOW - timedelta(hours=1), score=2) for n in range(members)]
    newer = [rating(n, "h1", NOW, score=5) for n in range(members)]
    accepted: list[str] = []
    # Two writers (the consumer and the held-command timer, say) each with one rating per rater.
    await asyncio.gather(
        *(
            transaction(sessions, batch_of(part[start : start + 100], accepted))
            for part in (newer, older)
            for start in range(0, members, 100)
        )
    )

    async with sessions() as session:
        r = evaluation_orm.ratings.c
        kept = dict((await session.execute(select(r.score_sum, func.count()).group_by(r.score_sum))).all())
    assert kept == {25: members}, f"older ratings overwrote newer ones: {kept}"


@PostgresOnly
async def test_the_events_clock_holds_up_no_other_transaction_before_its_own_commits(postgresql: Migrated) -> None:
    """Every feedback command moves the events clock, one row. Locked by the command that moved
    it, mid-batch, it deadlocked the commands' consumer against the consumer releasing held
    commands (each then wanted a row the other had locked). A transaction's move is written as
    it commits; its own commands see it at once, and a rejected command's move is taken back."""
    sessions = await postgresql(feedback.bootstrap)
    later = NOW + timedelta(days=1)
    async with sessions() as first, first.begin():
        uow = FeedbackUnitOfWork(first)
        await uow.begin(object())  # a command in a savepoint of its own, as feedback runs each
        await uow.clock.advance(NOW)
        await uow.keep()  # the savepoint's commit keeps the move for the transaction's
        await uow.begin(object())
        await uow.clock.advance(NOW + timedelta(days=9))
        await uow.discard()  # rejected: its move goes with it
        assert await uow.clock.now() == NOW
        async with sessions() as second, second.begin():  # while the first is open
            await second.execute(text("SET LOCAL lock_timeout = '2s'"))
            await FeedbackUnitOfWork(second).clock.advance(later)
            await FeedbackUnitOfWork(second).clock.advance(NOW)  # never back
        async with sessions() as reader:
            assert await FeedbackUnitOfWork(reader).clock.now() == later
    async with sessions() as reader:
        assert await FeedbackUnitOfWork(reader).clock.now() == later  # the first's earlier time did not move it back
    async with sessions() as third, third.begin():
        uow = FeedbackUnitOfWork(third)
        await uow.begin(object())
        await uow.clock.advance(later + timedelta(days=1))
        await uow.keep()  # a savepoint committed before the transaction: the move waits for the latter
    async with sessions() as reader:
        assert await FeedbackUnitOfWork(reader).clock.now() == later + timedelta(days=1)
