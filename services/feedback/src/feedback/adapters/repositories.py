"""SQLAlchemy implementations of feedback's ports, over the pipeline's transaction."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from unionhub_domain import month_of
from unionhub_runtime.database import insert_on_conflict
from unionhub_runtime.holding import held_on_aggregate
from unionhub_runtime.unit_of_work import Journal

from ..domain import model
from ..service_layer import ports
from . import orm

log = logging.getLogger(__name__)
_OPINION_COLUMNS = [c.name for c in orm.opinions.columns]


def _opinion(row: Any) -> model.Opinion:
    return model.Opinion(**row)


class Opinions(ports.AbstractOpinions):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self._session = session

    # A command's opinion is read locked and written whole: the overdue timer, which skips
    # locked rows and re-reads rows changed meanwhile, never writes back a stale copy.
    async def _get(self, opinion_id: str) -> model.Opinion | None:
        row = (
            (
                await self._session.execute(
                    select(orm.opinions).where(orm.opinions.c.opinion_id == opinion_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        return _opinion(row) if row else None

    def _row(self, opinion: model.Opinion) -> dict[str, Any]:
        return {name: getattr(opinion, name) for name in _OPINION_COLUMNS}

    async def _add(self, opinion: model.Opinion) -> None:
        await self._session.execute(insert(orm.opinions).values(self._row(opinion)))

    async def _due(self, now: datetime) -> list[model.Opinion]:
        o = orm.opinions.c
        # An answer held (for its responder's appointment, say) may have come in time: the
        # opinion is not overdue while a command on it is held, only once that is settled.
        answer_held = held_on_aggregate(orm.runtime_tables, "opinion_id", o.opinion_id)
        rows = await self._session.execute(
            select(orm.opinions)
            .where(o.status == model.ASSIGNED, o.overdue.is_(False), o.due_at < now, ~answer_held)
            .order_by(o.due_at)
            .with_for_update(of=orm.opinions, skip_locked=True)
        )
        return [_opinion(r) for r in rows.mappings()]

    async def _save(self, opinion: model.Opinion) -> None:
        await self._session.execute(
            update(orm.opinions).where(orm.opinions.c.opinion_id == opinion.opinion_id).values(self._row(opinion))
        )


class Membership(ports.AbstractMembership):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def union_on(self, member_id: str, day: date) -> str | None:
        return await orm.membership_view.union_on(self._session, member_id, day)

    async def cadre_union_on(self, member_id: str, day: date) -> str | None:
        return await orm.membership_view.cadre_union_on(self._session, member_id, day)

    async def full_time_cadres(self) -> dict[str, str]:
        c = orm.membership_view.cadres.c
        rows = await self._session.execute(select(c.member_id, c.union_id).where(c.role == "full_time_cadre"))
        return {str(k): v for k, v in rows}


class Visits(ports.AbstractVisits):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, visit_id: str) -> model.Visit | None:
        v = orm.visits.c
        row = (
            await self._session.execute(
                select(v.visit_id, v.cadre_id, v.place, v.visited_at, v.opinions_collected).where(
                    v.visit_id == visit_id
                )
            )
        ).first()
        return model.Visit(row[0], row[1], row[2], row[3], row[4]) if row else None

    async def add(self, visit: model.Visit) -> None:
        await self._session.execute(insert(orm.visits).values(**asdict(visit), month=month_of(visit.visited_at)))

    async def counts(self, month: str) -> dict[str, int]:
        v = orm.visits.c
        rows = await self._session.execute(
            select(v.cadre_id, func.count()).where(v.month == month).group_by(v.cadre_id)
        )
        return {str(k): v for k, v in rows}

    async def close_month(self, month: str) -> bool:
        m = orm.closed_visit_months.c
        if await self._session.scalar(select(m.month).where(m.month == month)):
            return False
        await self._session.execute(insert(orm.closed_visit_months).values(month=month))
        return True


class StreamClock(ports.AbstractStreamClock):
    """One row every command moves forward. A transaction's move is kept in memory and written
    as the transaction commits, so the row's lock is the last it takes: locked by the command
    that moved it, mid-batch, it deadlocked the commands' consumer against the consumer
    releasing held commands (each then wanted a row the other had locked). A rejected command's
    move is taken back with the rest of it (the unit of work's journal)."""

    def __init__(self, session: AsyncSession, journal: Journal) -> None:
        self._session = session
        self._journal = journal

    async def advance(self, at: datetime) -> None:
        info = self._session.info
        pending = info.get(_CLOCK_MOVED)
        if pending is not None and pending >= at:
            return
        if not event.contains(self._session.sync_session, "before_commit", _write_clock):
            event.listen(self._session.sync_session, "before_commit", _write_clock)
            event.listen(self._session.sync_session, "after_commit", _check_clock_written)
            event.listen(self._session.sync_session, "after_transaction_end", _forget_clock)
        self._journal.set(info, _CLOCK_MOVED, at)

    async def now(self) -> datetime | None:
        c = orm.stream_clock.c
        stored = await self._session.scalar(select(c.at).where(c.name == "events"))
        return max((at for at in (stored, self._session.info.get(_CLOCK_MOVED)) if at is not None), default=None)


_CLOCK_MOVED = "feedback.clock_moved"  # in the session's info: where its transaction moved the clock


def _write_clock(session: Session) -> None:
    """`before_commit` of a session that moved the clock (it fires for savepoints too: those
    are skipped). One statement: concurrent writers neither collide on the first row nor move
    it back. Runs in SQLAlchemy's greenlet, so the sync session's `execute` awaits the driver."""
    if session.in_nested_transaction() or (at := session.info.pop(_CLOCK_MOVED, None)) is None:
        return
    statement = insert_on_conflict(session, orm.stream_clock).values(name="events", at=at)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"at": statement.excluded.at},
            where=orm.stream_clock.c.at < statement.excluded.at,
        )
    )


def _check_clock_written(session: Session) -> None:
    """`after_commit`: a transaction committed with a savepoint still open skipped the write
    (`before_commit` then fires once, as for the savepoint): said, not lost silently."""
    if not session.in_nested_transaction() and session.info.pop(_CLOCK_MOVED, None) is not None:
        log.error("a transaction committed with a savepoint open: its move of the events clock was not written")


def _forget_clock(session: Session, transaction: SessionTransaction) -> None:
    """A transaction rolled back: its move goes with it (the session may run another)."""
    if transaction.parent is None:
        session.info.pop(_CLOCK_MOVED, None)
