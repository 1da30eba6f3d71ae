"""Commands that arrive before what they depend on: held durably, applied when it is.

A handler that finds a prerequisite missing raises `Missing(waiting_for, code, reason)`
("union:ft-1", "member:m-7"). The pipeline then keeps the command in `held_commands`
(same transaction as its inbox row, so it survives a crash) and publishes `command.held`
once. Each command also names its *lanes*: what it waits behind (`waits_on`) and what it
keeps others from overtaking while held (`blocks`). A later command whose `waits_on` meets a
held command's `blocks` is held behind it (a `member.leave` never overtakes its held
`member.enroll`), while unrelated commands on the same Kafka key go ahead.

Whatever applies a prerequisite (a command, or an event read from another service) names
the keys it provides; the commands waiting for them are retried in the same transaction,
in arrival order, under a row lock (`FOR UPDATE` on PostgreSQL), then what queued behind
each. A timer retries what started waiting lately (so a prerequisite committed by another
instance while a command was being held is noticed within seconds) and ends holds past
`UNIONHUB_HOLD_SECONDS`: the command is then tried once more with no hold allowed, so it
gets the rejection it would have had in order, and what queued behind it goes on.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import delete, exists, func, insert, literal, select, union, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Executable

from unionhub_contracts import CloudEvent, DecodeError, decode, message_type
from unionhub_contracts.rejections import CommandHeld

from . import outbox
from .database import KEYS, chunks, where_in, where_in_keys
from .postgres import PostgresStatement
from .reads import Read, ReadPart, ReadsTogether
from .scopes import BatchScope, Emit
from .tables import RuntimeTables

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

QUEUE = "queue:"  # waiting_for of a command held only behind another
RETRY_PAGE = 100  # held commands the timer retries in one transaction


@dataclass(frozen=True)
class Lanes:
    waits_on: frozenset[str]
    blocks: frozenset[str]

    @classmethod
    def of(cls, *lanes: str) -> Lanes:
        return cls(frozenset(lanes), frozenset(lanes))


NO_LANES = Lanes(frozenset(), frozenset())


LanesOf = Callable[[CloudEvent[Any]], Lanes]
Provides = Callable[[str, BaseModel], Iterable[str]]  # (event type, data) -> prerequisite keys


def aggregate_lane(field_name: str, value: object) -> str:
    """The lane of one aggregate: the contract's key field and its value ("member_id:m-7")."""
    return f"{field_name}:{value}"


def held_on_aggregate(tables: RuntimeTables, field_name: str, key: Any) -> Any:
    """A SQL condition: a command on the aggregate whose key (`field_name`) is the column
    `key` is held (it blocks that aggregate's lane)."""
    lanes = tables.held_lanes.c
    return exists().where(lanes.lane == literal(aggregate_lane(field_name, "")) + key)


def aggregate_lanes(topic: str) -> LanesOf:
    """One lane per aggregate: the contract's key field and value (e.g. "member_id:m-7")."""

    def lanes(event: CloudEvent[Any]) -> Lanes:
        field_name = message_type(topic, event.type).key
        if field_name is None:
            return NO_LANES
        return Lanes.of(aggregate_lane(field_name, getattr(event.data, field_name)))

    return lanes


@dataclass
class Held:
    seq: int
    consumer: str
    type: str
    value: bytes
    traceparent: str | None
    waiting_for: str | None
    held_at: datetime
    expires_at: datetime


Candidate = tuple[int, datetime, datetime]  # a held row the timer may retry: seq, held_at, expires_at


class Holding:
    """The service-wide mechanism: every pipeline that may hold or release uses this one."""

    def __init__(
        self,
        tables: RuntimeTables,
        *,
        hold_seconds: float,
        provides: Provides,
        metrics: Any,
        clock: Callable[[], datetime],
        first_retry_seconds: float = 2,
        recheck_seconds: float = 60,
    ) -> None:
        self.tables, self.provides, self.metrics, self.clock = tables, provides, metrics, clock
        self.hold = timedelta(seconds=hold_seconds)
        self.schedule = RetrySchedule(
            first=timedelta(seconds=first_retry_seconds), window=timedelta(seconds=recheck_seconds)
        )
        self.pipelines: dict[str, Pipeline] = {}
        self.lanes: dict[str, LanesOf] = {}
        self._queries: dict[tuple[str, str], tuple[Executable, Executable]] = {}  # built once: (what, dialect)
        self._begin: dict[str, tuple[Executable | PostgresStatement, Executable | PostgresStatement]] = {}  # by dialect
        self._begin_columns: ReadPart | None = None
        # For the timer's next round, from transactions of this instance that committed: the
        # keys they provided and the rows they held (`HoldContext.committed`).
        self._recheck_keys: set[str] = set()
        self._recheck_seqs: set[int] = set()

    def register(self, pipeline: Pipeline, lanes: LanesOf) -> None:
        self.pipelines[pipeline.config.consumer] = pipeline
        self.lanes[pipeline.config.consumer] = lanes

    async def begin(
        self, session: AsyncSession, consumer: str | None = None, events: Iterable[CloudEvent[Any]] = ()
    ) -> HoldContext:
        """What one transaction needs to know, in one round trip (this runs on every batch of
        every holding pipeline): which of the lanes the batch's commands (of `consumer`) wait
        on are occupied, and whether any command waits for a prerequisite at all. Only that:
        loading every held lane would make each batch cost as much as everything held."""
        wanted = self._lanes_waited_on(consumer, events)
        dialect = session.get_bind().dialect
        occupied, anything_waits = set(), False
        waits, lanes_and_waits = self._begin_queries(dialect)
        query, params = (lanes_and_waits, {KEYS: wanted}) if wanted else (waits, {})
        rows: Sequence[Any]
        if isinstance(query, PostgresStatement):
            rows = await query.fetch(session, **params)
        else:
            rows = (await session.execute(query, params)).all()
        for kind, lane in rows:
            if kind == "lane":
                occupied.add(lane)
            else:
                anything_waits = True
        return self._context(session, occupied, anything_waits)

    def begin_together(
        self, reads: ReadsTogether, session: AsyncSession, consumer: str, events: Iterable[CloudEvent[Any]]
    ) -> Read[HoldContext]:
        """`begin` as one of the batch's `reads`."""
        events = list(events)  # read twice where reads do not combine
        wanted = self._lanes_waited_on(consumer, events)
        return reads.add(
            self._begin_part(),
            [wanted],
            lambda columns: self._context(session, set(columns[0]), columns[1]),
            lambda: self.begin(session, consumer, events),
        )

    def _lanes_waited_on(self, consumer: str | None, events: Iterable[CloudEvent[Any]]) -> list[str]:
        return sorted({lane for e in events for lane in self.lanes[consumer](e).waits_on}) if consumer else []

    def _context(self, session: AsyncSession, occupied: set[str], anything_waits: bool) -> HoldContext:
        # On SQLite writing transactions take turns (the service's write lock): none holds a
        # command while another provides its key, so there is nothing to recheck.
        rechecks = session.get_bind().dialect.name != "sqlite"
        return HoldContext(self, session, occupied, anything_waits, rechecks=rechecks)

    def _begin_part(self) -> ReadPart:
        """`begin`'s question as columns of the reads (PostgreSQL's): the lanes occupied among
        those given, and whether anything waits."""
        if self._begin_columns is None:
            held, lanes = self.tables.held.name, self.tables.held_lanes.name
            self._begin_columns = ReadPart(
                (
                    f"ARRAY(SELECT DISTINCT {lanes}.lane FROM {lanes} JOIN unnest(CAST({{0}} AS VARCHAR[])) "
                    f"AS unionhub_lanes (lane) ON {lanes}.lane = unionhub_lanes.lane)",
                    f"EXISTS (SELECT 1 FROM {held} WHERE {held}.waiting_for IS NOT NULL)",
                ),
                1,
            )
        return self._begin_columns

    def _begin_queries(self, dialect: Dialect) -> tuple[Executable | PostgresStatement, Executable | PostgresStatement]:
        """`begin`'s statements: whether anything waits, and that with the lanes occupied
        among some (built once: `begin` runs on every batch; on PostgreSQL compiled for
        `postgres_fetch`, past SQLAlchemy's execution)."""
        found = self._begin.get(dialect.name)
        if found is None:
            h, hl = self.tables.held.c, self.tables.held_lanes.c
            waits = select(literal("wait"), literal("")).where(exists().where(h.waiting_for.is_not(None)))
            lanes = where_in(select(literal("lane"), hl.lane), hl.lane, dialect)
            found = (waits, union(lanes, waits))
            if dialect.name == "postgresql":
                found = (PostgresStatement.of(found[0], dialect), PostgresStatement.of(found[1], dialect))
            self._begin[dialect.name] = found
        return found

    def recheck(self, provided: Iterable[str], held: Iterable[int]) -> None:
        """A transaction committed: what it provided and what it held are looked at again
        by the timer's next round. Two transactions running at once, one holding a command
        for a key, the other providing the key, do not see each other's rows; whichever
        commits last is then seen by the other's recheck, however long either took."""
        self._recheck_keys.update(provided)
        self._recheck_seqs.update(held)

    async def retry_round(
        self,
        sessions: async_sessionmaker[AsyncSession],
        write_lock: AbstractAsyncContextManager[Any],
        write: Callable[[AsyncSession, list[outbox.Pending]], Awaitable[None]],
        notify: Callable[[], None],
    ) -> int:
        """One round of the held-commands timer: retries what is due (the rechecks, and what
        the `RetrySchedule` says: applies what may now be, rejects what waited past the hold
        period), its answers given to `write` in each transaction and `notify` called once
        one with answers committed. Returns how many answers."""
        began = self.clock()
        # Taken whole: what a transaction committing during the round adds is the next round's.
        keys, self._recheck_keys = self._recheck_keys, set()
        seqs, self._recheck_seqs = self._recheck_seqs, set()
        try:
            async with sessions() as session:
                candidates = await self.timer_candidates(session, began)
                recheck = await self._still_held(session, seqs, keys)
        except BaseException:
            self.recheck(keys, seqs)
            raise
        scheduled = {seq for seq, _ in self.schedule.due(candidates, began)}
        due = scheduled | recheck
        written, retried = 0, set[int]()
        # A page a transaction, small: a consumer releasing the same rows waits for the page's
        # locks (500 retries took longer than its lock timeout on a slow machine).
        try:
            for page in chunks(sorted(due), RETRY_PAGE):
                async with write_lock, sessions() as session, session.begin():
                    holds = await self.begin(session)
                    outgoing, tried = await holds.retry(page)
                    await write(session, outgoing)
                holds.committed()
                # Committed: those retries happened. A recheck alone does not start the schedule.
                self.schedule.tried([row for row in tried if row[0] in scheduled], began)
                retried.update(seq for seq, _ in tried)
                written += len(outgoing)
                if outgoing:
                    notify()
        finally:
            # A row another transaction had locked (the round skips those), or one a failed
            # page did not get to, is looked at again.
            self._recheck_seqs |= recheck - retried
        self.schedule.round_done(began, candidates)
        return written

    async def _still_held(self, session: AsyncSession, seqs: set[int], keys: set[str]) -> set[int]:
        """Of rows `seqs`, those still held, and the rows waiting for any of `keys`: on
        PostgreSQL a statement each, whatever their number (every command a batch applies
        provides keys: tens of thousands a round at full rate)."""
        dialect = session.get_bind().dialect
        by_seq, by_key = self._still_held_queries(dialect)
        found: set[int] = set()
        for query, wanted in ((by_seq, sorted(seqs)), (by_key, sorted(keys))):
            for some in where_in_keys(wanted, dialect):
                found.update((await session.execute(query, {KEYS: some})).scalars())
        return found

    def _still_held_queries(self, dialect: Dialect) -> tuple[Executable, Executable]:
        found = self._queries.get(("still held", dialect.name))
        if found is None:
            c = self.tables.held.c
            found = self._queries["still held", dialect.name] = (
                where_in(select(c.seq), c.seq, dialect),
                where_in(select(c.seq), c.waiting_for, dialect),
            )
        return found

    async def timer_candidates(self, session: AsyncSession, now: datetime) -> list[Candidate]:
        """(seq, held_at, expires_at) of what the timer's round may retry, in arrival order:
        what started waiting within the schedule's window, and what waited past the hold period."""
        c = self.tables.held.c
        query = select(c.seq, c.held_at, c.expires_at).order_by(c.seq)
        if (since := self.schedule.since(now)) is not None:
            query = query.where((c.held_at >= since) | (c.expires_at <= now))
        return [(seq, held_at, expires_at) for seq, held_at, expires_at in await session.execute(query)]


class RetrySchedule:
    """When the held-commands timer retries a command that still waits (per instance, in memory).

    A command held while another transaction applied its prerequisite was seen by neither
    transaction: only a retry after both committed applies it. The rechecks of both
    (`Holding.recheck`) make it while their instances live. For one that dies between its
    commit and its next round (or a peer running an older version) the timer retries each
    command once more when as long has passed since it started waiting (`held_at`, reset when it
    waits for something new) as such a transaction could have taken (`window`): rows held within
    the window before the last round that succeeded are candidates (a database outage or a
    restart widens that: the first round of an instance retries everything once). A command
    whose hold ended is retried at once, to be rejected as in order. A retry that leaves a
    command waiting is made again at doubling intervals from `first` while it is a candidate:
    retrying thousands of held ratings every round would cost a full apply each (before the
    rechecks, every row was retried at once and then at doubling intervals: 26,145 retries in
    the campaign test, none of which settled anything). Instances' clocks are assumed to agree
    well within `window`."""

    def __init__(self, *, first: timedelta, window: timedelta) -> None:
        self.first, self.window = first, window
        self._tries: dict[tuple[int, datetime], tuple[int, datetime]] = {}  # (seq, held_at) -> (tries, last try)
        self._last_round: datetime | None = None  # when the last round that succeeded began

    def since(self, now: datetime) -> datetime | None:
        """Rows that started waiting after this are candidates (None: every row)."""
        return None if self._last_round is None else min(now, self._last_round) - self.window

    def due(self, candidates: Iterable[Candidate], now: datetime) -> list[tuple[int, datetime]]:
        """Of candidate rows: those to retry now. A try made before a row's window or hold
        ended does not stand for the one that calls for (a row tried in an instance's first
        round still gets its try at the end of its window)."""
        first_round = self._last_round is None
        due = []
        for seq, held_at, expires_at in candidates:
            tried = self._tries.get((seq, held_at))
            if tried is None:
                ready = first_round or expires_at <= now or held_at + self.window <= now
            else:
                tries, last = tried
                ready = last + self.first * 2 ** (tries - 1) <= now or any(
                    last < mark <= now for mark in (held_at + self.window, expires_at)
                )
            if ready:
                due.append((seq, held_at))
        return due

    def tried(self, rows: Iterable[tuple[int, datetime]], now: datetime) -> None:
        for key in rows:
            self._tries[key] = (self._tries.get(key, (0, now))[0] + 1, now)

    def round_done(self, began: datetime, candidates: Iterable[Candidate]) -> None:
        self._last_round = began
        still = {(seq, held_at) for seq, held_at, _ in candidates}
        self._tries = {k: v for k, v in self._tries.items() if k in still}  # settled or moved on: forgotten


@dataclass(frozen=True)
class Settled:
    """A held command applied or rejected: what the metrics record once its transaction commits."""

    topic: str
    type: str
    kind: str  # applied or rejected
    code: str
    held_seconds: float
    expired: bool


@dataclass
class HoldContext:
    holding: Holding
    session: AsyncSession
    occupied: set[str]  # lanes held commands block (those the batch's commands wait on)
    anything_waits: bool  # some held command waits for a prerequisite (else none to release)
    rechecks: bool = True  # what it held and provided is rechecked once committed (`Holding.recheck`)
    scopes: dict[str, BatchScope] = field(default_factory=dict)
    skip_locked: bool = False  # the timer's rounds skip rows locked by others
    settled: list[Settled] = field(default_factory=list)  # counted by `committed`
    fresh_scopes: list[BatchScope] = field(default_factory=list)  # other consumers' scopes that applied
    _applied_in_own_scope: bool = False  # the retry being made changed the batch's scope
    _provided: set[str] = field(default_factory=set)  # keys this transaction made known
    _held: list[int] = field(default_factory=list)  # rows this transaction held

    def committed(self) -> None:
        """Counts what this transaction settled; called once it committed (a transaction
        rolled back and tried again counts nothing). A released command counts as a command's
        outcome only: it was counted as a message taken from its topic when it was held."""
        metrics = self.holding.metrics
        for s in self.settled:
            metrics.hold_seconds.labels(s.topic).observe(s.held_seconds)
            if s.expired and s.kind == "rejected":
                metrics.hold_expired.labels(s.topic, s.code).inc()
            metrics.commands.labels(s.type, s.kind, s.code).inc()
        for scope in self.fresh_scopes:
            scope.committed()
        if self.rechecks:
            self.holding.recheck(self._provided, self._held)
        self.settled.clear()
        self.fresh_scopes.clear()
        self._provided.clear()
        self._held.clear()

    def use_scope(self, consumer: str, scope: BatchScope) -> None:
        self.scopes[consumer] = scope

    def queued_behind(self, consumer: str, event: CloudEvent[Any]) -> str | None:
        """The lane a newly read command must wait behind, if any."""
        if not self.occupied:  # the usual case: nothing to compute a command's lanes for
            return None
        lanes = self.holding.lanes[consumer](event)
        return next((lane for lane in sorted(lanes.waits_on) if lane in self.occupied), None)

    async def hold(
        self, consumer: str, event: CloudEvent[Any], traceparent: str | None, waiting_for: str
    ) -> outbox.Pending:
        """Keeps `event` durably and returns its `command.held` answer."""
        h = self.holding
        now = h.clock()
        lanes = h.lanes[consumer](event)
        prerequisite = None if waiting_for.startswith(QUEUE) else waiting_for
        result = await self.session.execute(
            insert(h.tables.held)
            .values(
                consumer=consumer,
                source=event.source,
                message_id=event.id,
                type=event.type,
                value=event.model_dump_json().encode(),
                traceparent=traceparent,
                waiting_for=prerequisite,
                held_at=now,
                expires_at=now + h.hold,
            )
            .returning(h.tables.held.c.seq)
        )
        seq = result.scalar_one()
        self._held.append(seq)
        if lanes.blocks:
            await self.session.execute(
                insert(h.tables.held_lanes), [{"lane": lane, "seq": seq} for lane in lanes.blocks]
            )
        self.occupied |= lanes.blocks
        self.anything_waits |= prerequisite is not None
        data = CommandHeld(command_id=event.id, command_type=event.type, waiting_for=waiting_for)
        pipeline = h.pipelines[consumer]
        return outbox.Pending(pipeline.encode(Emit("command.held", data, key=event.id), event), traceparent)

    def provided(self, event: CloudEvent[Any], emitted: Sequence[Emit]) -> set[str]:
        """The prerequisite keys `event` made known, to release now while some held command
        waits for any (all are rechecked once committed: one held meanwhile was not seen)."""
        if not self.anything_waits and not self.rechecks:
            return set()  # the hot path with nothing held, where no recheck is needed
        keys = set(self.holding.provides(event.type, event.data))
        for emit in emitted:
            keys.update(self.holding.provides(emit.type, emit.data))
        self._provided |= keys
        return keys if self.anything_waits else set()

    async def release(self, keys: set[str]) -> list[outbox.Pending]:
        """Retries, in arrival order, the commands waiting for `keys` and what queued behind them."""
        if not keys:
            return []
        h = self.holding.tables.held.c
        return await self.drain(await self._rows(h.waiting_for.in_(sorted(keys))))

    async def retry(self, seqs: Sequence[int]) -> tuple[list[outbox.Pending], list[tuple[int, datetime]]]:
        """The timer's retry of rows `seqs` (those still held): their answers, and the rows it
        retried. Rows another transaction locked are its to settle: the timer never waits for
        a lock (so it is never part of a deadlock with a consumer releasing the same rows)."""
        self.skip_locked = True
        locked = await self._rows(self.holding.tables.held.c.seq.in_(seqs), skip_locked=True)
        return await self.drain(locked), [(row.seq, row.held_at) for row in locked]

    async def _rows(self, condition: Any, *, skip_locked: bool = False) -> list[Held]:
        held = self.holding.tables.held
        query = select(
            held.c.seq,
            held.c.consumer,
            held.c.type,
            held.c.value,
            held.c.traceparent,
            held.c.waiting_for,
            held.c.held_at,
            held.c.expires_at,
        ).order_by(held.c.seq)
        if condition is not None:
            query = query.where(condition)
        # Two instances never both apply or both reject one held command.
        query = query.with_for_update(skip_locked=skip_locked)
        return [Held(*row) for row in await self.session.execute(query)]

    async def drain(self, rows: list[Held]) -> list[outbox.Pending]:
        """Retries `rows` in arrival order, then what each one settled let go: what queued
        behind it, and what waited for what it provided. A row retried once in the drain
        (still held, its prerequisite not there yet) is retried again when a later one in the
        same drain provides that (a district registered, its union, then the member waiting
        for the union)."""
        out: list[outbox.Pending] = []
        pending = {row.seq: row for row in rows}  # by seq: the row as last read
        heap = list(pending)
        heapq.heapify(heap)
        t = self.holding.tables
        while heap:
            seq = heapq.heappop(heap)
            row = pending.pop(seq, None)
            if row is None or row.consumer not in self.holding.pipelines:
                continue
            event = self._decoded(row)
            if event is None or await self._blocked(row, event):
                continue
            emitted = await self._retry(row, event, out)
            if emitted is None:
                continue
            blocks = set(
                (
                    await self.session.execute(
                        delete(t.held_lanes).where(t.held_lanes.c.seq == seq).returning(t.held_lanes.c.lane)
                    )
                ).scalars()
            )
            await self.session.execute(delete(t.held).where(t.held.c.seq == seq))
            self.occupied -= blocks
            self.occupied |= set(
                (
                    await self.session.execute(
                        select(t.held_lanes.c.lane).where(t.held_lanes.c.lane.in_(blocks)).distinct()
                    )
                ).scalars()
            )
            # Only what merely queued behind it: a command held for a prerequisite of its own
            # waits for that, not for this one (and retrying it would be wasted work).
            behind = await self._rows(
                t.held.c.waiting_for.is_(None)
                & t.held.c.seq.in_(
                    select(t.held_lanes.c.seq).where(t.held_lanes.c.lane.in_(blocks), t.held_lanes.c.seq > seq)
                ),
                skip_locked=self.skip_locked,
            )
            ready = self.provided(event, emitted)
            waiting = (
                await self._rows(t.held.c.waiting_for.in_(sorted(ready)), skip_locked=self.skip_locked) if ready else []
            )
            for later in [*behind, *waiting]:
                if later.seq not in pending:
                    heapq.heappush(heap, later.seq)
                pending[later.seq] = later
        return out

    def _decoded(self, row: Held) -> CloudEvent[Any] | None:
        """The held command, or None (logged, left held) when the contract no longer reads it."""
        try:
            return decode(self.holding.pipelines[row.consumer].config.topic, row.value)
        except DecodeError as error:
            log.error("held command %s of %s is no longer readable (%s); it stays held", row.seq, row.consumer, error)
            return None

    async def _blocked(self, row: Held, event: CloudEvent[Any]) -> bool:
        """An earlier held command blocks a lane this one waits on."""
        lanes = self.holding.lanes[row.consumer](event)
        if not lanes.waits_on:
            return False
        hl = self.holding.tables.held_lanes.c
        found = await self.session.scalar(select(hl.seq).where(hl.lane.in_(lanes.waits_on), hl.seq < row.seq).limit(1))
        return found is not None

    async def _retry(self, row: Held, event: CloudEvent[Any], out: list[outbox.Pending]) -> Sequence[Emit] | None:
        """Applies or rejects `row` (then returns what it provided: its events when applied),
        or keeps holding it (None).

        A failure other than a rule (a bug, a stored value the contract no longer reads) keeps
        the row held and logged, in a savepoint: it never fails the transaction that released
        it (that would dead-letter the prerequisite) nor the timer's round (that would stall
        every other held command).

        With the batch's own scope, what that scope keeps in memory is written first, so the
        savepoint cannot take earlier commands' writes back with this one; and a failure after
        the scope applied the command fails the batch (retried whole), since the scope's memory
        would keep what the savepoint took back."""
        own = self.scopes.get(row.consumer)
        if own is not None:
            await own.flush()
        self._applied_in_own_scope = False
        try:
            async with self.session.begin_nested():
                retried = await self._apply(row, event)
        except Exception:
            if self._applied_in_own_scope:
                raise
            log.exception("held command %s of %s could not be retried; it stays held", row.seq, row.consumer)
            return None
        # Recorded once the savepoint is released: what it took back is neither answered nor counted.
        if retried.settled is None:
            return None
        self.settled.append(retried.settled)
        out.extend(retried.answers)
        if retried.fresh_scope is not None:
            self.fresh_scopes.append(retried.fresh_scope)
        return retried.provided

    async def _apply(self, row: Held, event: CloudEvent[Any]) -> _Retried:
        h = self.holding
        pipeline = h.pipelines[row.consumer]
        own = self.scopes.get(row.consumer)  # the batch's scope, when the command is of the batch's consumer
        # Another consumer's command gets a scope of its own each time: a scope caches what it
        # read, and what the releasing transaction wrote since would be missed.
        scope = own if own is not None else pipeline.scope(self.session)
        if own is None:
            await scope.prefetch([event])
        expired = h.clock() >= row.expires_at
        outcome = await pipeline.apply_one(scope, event, final=expired)
        if own is None:
            await scope.flush()
        else:
            self._applied_in_own_scope = outcome.waiting_for is None  # applied or rejected: settled in the scope
        if outcome.waiting_for is not None:
            if outcome.waiting_for != row.waiting_for:
                await self.session.execute(
                    update(h.tables.held)
                    .where(h.tables.held.c.seq == row.seq)
                    .values(waiting_for=outcome.waiting_for, held_at=h.clock())
                )
                self.anything_waits = True
                self._held.append(row.seq)  # held anew: rechecked like a command just held
            return _Retried()
        held_since = row.expires_at - h.hold  # held_at moves when the command waits for something new
        held_seconds = (h.clock() - held_since).total_seconds()
        return _Retried(
            settled=Settled(pipeline.config.topic, event.type, outcome.kind, outcome.code, held_seconds, expired),
            answers=[outbox.Pending(pipeline.encode(e, event), row.traceparent) for e in outcome.emitted],
            provided=outcome.emitted if outcome.kind == "applied" else (),
            fresh_scope=scope if own is None else None,
        )


@dataclass
class _Retried:
    """What one retry of a held command did: nothing (still held: `settled` None), or its
    settlement, its answers, what it provided and the scope of its own it ran in."""

    settled: Settled | None = None
    answers: list[outbox.Pending] = field(default_factory=list)
    provided: Sequence[Emit] = ()
    fresh_scope: BatchScope | None = None


async def count_held(session: AsyncSession, tables: RuntimeTables) -> dict[tuple[str, str], int]:
    """Held commands now, by consumer and what they wait for ("union", "member", "queue", …)."""
    h = tables.held.c
    rows = await session.execute(select(h.consumer, h.waiting_for, func.count()).group_by(h.consumer, h.waiting_for))
    counts: dict[tuple[str, str], int] = {}
    for consumer, waiting_for, n in rows:
        kind = waiting_for.split(":", 1)[0] if waiting_for else "queue"
        counts[consumer, kind] = counts.get((consumer, kind), 0) + n
    return counts
