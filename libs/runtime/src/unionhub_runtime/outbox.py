"""Transactional outbox: events are rows written with the state change, published after commit."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from sqlalchemy import Update, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from unionhub_contracts import CONTENT_TYPE, OutgoingEvent

from .backoff import Backoff
from .database import KEYS, is_lock_timeout, is_transient, where_in
from .inserts import InsertsTogether, insert_rows
from .logs import describe_error
from .metrics import RuntimeMetrics
from .postgres import PostgresStatement
from .shutdown import cancelled
from .tables import RuntimeTables
from .tracing import TRACEPARENT

log = logging.getLogger(__name__)

HEADERS = [("content-type", CONTENT_TYPE.encode())]
# Any constant works; it names the lock that makes one relay at a time publish (order per key).
_RELAY_LOCK_KEY = 0x756E696F6E
# An event's value, key and trace context together: under Kafka's default message.max.bytes
# (1,048,588) with room for the headers, so no event is written that no broker would take.
MAX_EVENT_BYTES = 1_000_000
# How long a send may wait for its topic's metadata (a missing topic) before it counts as failed.
METADATA_SECONDS = 5.0
# How long a round waits for Kafka's acknowledgements: well under the sessions' idle-in-
# transaction limit (`DatabaseTimeouts`, 20 s), which would end the relay's transaction.
SEND_SECONDS = 10.0
# How often a backlog drained in full rounds is counted for its gauge: a count reads every
# pending row, which each round of a large backlog did, with the relay's lock held.
BACKLOG_COUNT_SECONDS = 1.0
# How long a round waits for the outbox's open writers to end before trying again.
WRITERS_WAIT_SECONDS = 1.0
# How long a round waits for another instance's round (which holds the relay's lock) to end
# before it says so and waits again: longer than a round takes (`SEND_SECONDS`).
LOCK_WAIT_SECONDS = SEND_SECONDS + 2
_OUTBOX_WRITERS = (
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND mode = 'RowExclusiveLock' "
    "AND granted AND relation = CAST(:table AS regclass) AND pid IS DISTINCT FROM pg_backend_pid()"
)
_OUTBOX_WRITERS_LEFT = text(
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND mode = 'RowExclusiveLock' "
    "AND granted AND relation = CAST(:table AS regclass) AND virtualtransaction = ANY(:writers)"
)


async def bounded_send(producer: AIOKafkaProducer, topic: str, **record: Any) -> asyncio.Future[Any]:
    """`producer.send`, waiting at most `METADATA_SECONDS` for the metadata of a topic it does
    not know yet (a missing topic would hold it for the whole request timeout). Cancelling
    while it waits for metadata queues nothing, so a retry cannot double the record."""
    sending = producer.send(topic, **record)
    if not producer.client.cluster.partitions_for_topic(topic):
        sending = asyncio.wait_for(sending, METADATA_SECONDS)
    future: asyncio.Future[Any] = await sending  # a known topic: no task per record
    return future


_NO_CEILING = 2**63 - 1  # above any outbox id


class _LockBusy(Exception):
    """Other instances' rounds held the relay's lock past `LOCK_WAIT_SECONDS`."""


class EventTooLarge(ValueError):
    """A handler produced an event larger than `MAX_EVENT_BYTES`: the command fails instead."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An event for the outbox and the trace context it continues."""

    event: OutgoingEvent
    traceparent: str | None = None


async def write(
    session: AsyncSession,
    tables: RuntimeTables,
    topic: str,
    pending: Sequence[Pending],
    together: InsertsTogether | None = None,
) -> None:
    """Adds the `pending` events to the outbox inside the caller's transaction (gathered in
    `together` when given: the caller runs it)."""
    if not pending:
        return
    for p in pending:
        size = len(p.event.value) + len(p.event.key or "") + len(p.traceparent or "")
        if size > MAX_EVENT_BYTES:
            raise EventTooLarge(f"event {p.event.type} {p.event.id} is {size} bytes, over {MAX_EVENT_BYTES}")
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": p.event.id,
            "topic": topic,
            "event_type": p.event.type,
            "key": p.event.key,
            "value": p.event.value,
            "traceparent": p.traceparent,
            "created_at": now,
        }
        for p in pending
    ]
    await insert_rows(session, tables.outbox, rows, together)


def _headers(traceparent: str | None) -> list[tuple[str, bytes]]:
    return HEADERS if traceparent is None else [*HEADERS, (TRACEPARENT, traceparent.encode())]


class _Row(NamedTuple):
    """An outbox row the relay publishes (the columns of `OutboxRelay._pending_up_to`)."""

    id: int
    topic: str
    key: str | None
    value: bytes
    traceparent: str | None
    created_at: datetime


@dataclass(frozen=True)
class _PostgresRound:
    """The statements of a round on PostgreSQL, compiled once for `postgres_fetch` (each
    through SQLAlchemy costs about 150 µs more of CPU: bench/README.md, round eight)."""

    start: PostgresStatement
    writers_left: PostgresStatement
    claim: PostgresStatement
    unmark: PostgresStatement


# (topic, key, None), or (topic, None, id) for a row without a key: what is published in order.
Lane = tuple[str, str | None, int | None]


def _settled(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: an abandoned send's late failure is not reported as lost


def _lane(row: Any) -> Lane:
    return (row.topic, row.key, None) if row.key is not None else (row.topic, None, row.id)


@dataclass
class _Batch:
    """Rows of one partition in one record batch, sent whole."""

    builder: BatchBuilder
    rows: list[Any] = field(default_factory=list)


@dataclass
class _Blocked:
    """A lane whose first event Kafka did not take: it waits until `retry_at`, the others go on."""

    retry_at: float
    backoff: float


class OutboxRelay:
    """Publishes unpublished outbox rows in insertion order, and marks them published in a
    transaction that commits once Kafka has taken them.

    Woken right after each commit, and polls as a safety net (restart, another instance's
    rows). On PostgreSQL an advisory lock lets one relay at a time publish, which keeps the
    per-key order across instances (a round that finds another's under way waits for it to
    end, then publishes what that one left), and each round publishes only up to the highest
    id every writer before it has committed (transactions may commit out of id order). A crash
    between send and mark publishes again: events are delivered at least once and consumers
    deduplicate by event id. An event Kafka does not take (too large, not granted) holds back
    only the events behind it on its own key, a topic Kafka does not know only that topic,
    each retried with backoff. Published rows are pruned by the service (`retention`).
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        tables: RuntimeTables,
        metrics: RuntimeMetrics,
        poll_seconds: float = 1.0,
        batch_size: int = 2_000,
        write_lock: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._write_lock = write_lock or nullcontext()
        self._sessions = sessions
        self._tables = tables
        self._producer: AIOKafkaProducer | None = None
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._blocked: dict[Lane, _Blocked] = {}
        self._blocked_topics: dict[str, _Blocked] = {}
        self._lane_backoff = Backoff(0.5, 5.0)
        # The producer's own (`create_producer` sets none): a key's events go where
        # `producer.send` and the Java client would put them.
        self._partitioner = DefaultPartitioner()
        outbox = tables.outbox
        self._round_start = select(
            func.pg_try_advisory_xact_lock(bindparam("key")),
            func.set_config("synchronous_commit", "off", True),
            # The round's statements planned for the outbox as it is: a generic plan settled
            # on while it was small reads the whole table each round once it has grown.
            func.set_config("plan_cache_mode", "force_custom_plan", True),
            select(func.coalesce(func.max(outbox.c.id), 0)).scalar_subquery(),
            func.array(text(_OUTBOX_WRITERS)),
        )
        # Pending rows in `ix_outbox_unpublished`'s order (`published_at` is NULL throughout, so
        # this is id order): PostgreSQL reads them off the index and stops, where `ORDER BY id`
        # alone made it read and sort every pending row (or walk every published one).
        self._pending_order = (outbox.c.published_at, outbox.c.id)
        self._pending_up_to = (
            select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.traceparent, outbox.c.created_at)
            .where(outbox.c.published_at.is_(None), outbox.c.id <= bindparam("upto"))
            .order_by(*self._pending_order)
            .limit(batch_size)
        )
        # Waits for the lock, at most `LOCK_WAIT_SECONDS`: `lock_timeout` is set first (a
        # subquery in FROM is read before the select list), for the rest of the round's
        # transaction.
        self._await_lock = select(func.pg_advisory_xact_lock(bindparam("key"))).select_from(
            select(func.set_config("lock_timeout", bindparam("wait_ms"), True).label("set")).subquery()
        )
        assert _Row._fields == tuple(c.name for c in self._pending_up_to.selected_columns), "rows read by position"
        self._mark: Update | None = None  # built on first use, for the engine's dialect
        self._postgres: _PostgresRound | None = None  # likewise
        self._counted_at = -math.inf  # when the backlog was last counted

    def notify(self) -> None:
        """Something was committed to the outbox: publish it now."""
        self._wake.set()

    def start(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, grace_seconds: float = SEND_SECONDS + 5) -> None:
        """Lets a publish under way finish (so it is marked), publishes what is committed by
        then (`_flush`), then stops; cancelled past `grace_seconds`, when what it has not
        marked is published again by the next relay."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            await cancelled(task)
        except asyncio.CancelledError:
            # The caller's own budget ran out: the relay must not go on sending while the
            # producer it uses is being closed.
            await cancelled(task)
            raise

    async def _run(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while not self._stopping:
            try:
                published = await self.publish_pending()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except _LockBusy:
                # What this round was to publish still is: wait for the lock again at once
                # (a wait costs the database nothing), not for a wake that came during this one.
                log.warning(
                    "outbox relay: other instances' rounds held the relay's lock for %.0fs (is Kafka slow?); waiting again",
                    LOCK_WAIT_SECONDS,
                )
                continue
            except Exception as exc:
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(level, "outbox relay failed, retrying in %.1fs: %s", backoff.delay, describe_error(exc))
                await backoff.sleep()
                continue
            if published and not self._stopping:
                continue  # there may be more behind this batch
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
        await self._flush()

    async def _flush(self) -> None:
        """On stop: publishes what was committed before it (the service stopped its consumers
        and timers first): this instance's last batches, committed after the round under way
        began, which would otherwise wait for another instance. Only up to the highest id
        there is now: other instances keep writing, and their rows are their relays' work.
        Rounds until one publishes less than a full batch; a failure leaves the rest to the
        next relay."""
        try:
            ceiling = await self._highest_id()
            while await self.publish_pending(ceiling) == self._batch_size:
                pass
        except Exception as exc:
            log.warning("outbox relay: publishing on stop failed, left to the next relay: %s", describe_error(exc))

    async def publish_pending(self, ceiling: int | None = None) -> int:
        """Publishes one batch of pending events (of ids up to `ceiling`, when given); returns how many."""
        started = time.perf_counter()
        engine: AsyncEngine = self._sessions.kw["bind"]
        if engine.dialect.name == "postgresql":
            sent = await self._publish_postgresql(engine, ceiling)
        else:
            async with self._sessions() as session:
                # SQLite has one relay (one process); keep its write lock off the Kafka round trip.
                await session.connection(execution_options={"readonly": True})  # begins
                rows = await self._pending(session, ceiling)
                await session.commit()
                sent = await self._send(rows)
                if sent:
                    async with self._write_lock, session.begin():
                        await session.execute(self._mark_statement(), self._marked(sent))
        if sent:
            self._metrics.db_seconds.labels("publish").observe(time.perf_counter() - started)
            for topic, count in collections.Counter(row.topic for row in sent).items():
                self._metrics.outbox_published.labels(topic).inc(count)
        return len(sent)

    async def _highest_id(self) -> int:
        outbox = self._tables.outbox
        async with self._sessions() as session:
            return int(await session.scalar(select(func.coalesce(func.max(outbox.c.id), 0))) or 0)

    async def _publish_postgresql(self, engine: AsyncEngine, ceiling: int | None) -> list[Any]:
        # One connection and one transaction for the round (one check-out from the pool),
        # which its first statement begins: the lock, the highest id and the outbox's open
        # writers together.
        start = {"key": _RELAY_LOCK_KEY, "table": self._tables.outbox.name}
        statements = self._postgres_round(engine.dialect)
        async with engine.connect() as connection, connection.begin():
            # The lock is held until commit: no other relay publishes between our claim (the
            # rows read and marked) and the end of the send. The marks commit only after Kafka
            # took the rows, and losing them in a crash only publishes again (consumers
            # deduplicate): no need to wait for the WAL flush on commit (nothing else is written).
            locked, _, _, highest, writers = (await statements.start.fetch(connection, **start))[0]
            if not locked:
                if self._stopping:
                    return []  # the rounds of the other instances publish it: no wait within a stop
                # Another instance's round is under way. Rows committed after it read the
                # highest id (ours, notified now) are left to a next round, and its relay may
                # not run one: wait for this one to end (its commit frees the lock), then
                # start again (taken again by the transaction holding it, the lock is granted).
                await self._wait_for_lock(connection)
                locked, _, _, highest, writers = (await statements.start.fetch(connection, **start))[0]
                assert locked, "the lock is this transaction's already"
            upto = await self._committed_up_to(connection, statements, int(highest or 0), list(writers))
            if upto is None:
                return []
            upto = upto if ceiling is None else min(upto, ceiling)
            if self._blocked or self._blocked_topics:
                # Kafka refused some lately: the rows are marked after the send, as on SQLite,
                # not marked and unmarked again each round while it refuses (each a new
                # version of the row, its value too).
                rows = await self._pending(connection, upto)
                sent = await self._send(rows)
                if sent:
                    await connection.execute(self._mark_statement(), self._marked(sent))
                return sent
            rows = await self._claim(connection, upto, statements)
            sent = await self._send(rows)
            if len(sent) < len(rows):  # what Kafka did not take stays unpublished
                taken = {row.id for row in sent}
                await statements.unmark.fetch(connection, **{KEYS: [row.id for row in rows if row.id not in taken]})
        return sent

    def _postgres_round(self, dialect: Dialect) -> _PostgresRound:
        if self._postgres is None:
            self._postgres = _PostgresRound(
                start=PostgresStatement.of(self._round_start, dialect),
                writers_left=PostgresStatement.of(_OUTBOX_WRITERS_LEFT, dialect),
                claim=PostgresStatement.of(self._claiming(), dialect),
                unmark=PostgresStatement.of(self._set_published_at(None), dialect),
            )
        return self._postgres

    async def _wait_for_lock(self, connection: AsyncConnection) -> None:
        try:
            await connection.execute(
                self._await_lock, {"key": _RELAY_LOCK_KEY, "wait_ms": str(int(LOCK_WAIT_SECONDS * 1000))}
            )
        except DBAPIError as exc:
            if is_lock_timeout(exc):
                raise _LockBusy from exc  # out of the transaction, which rolls back
            raise

    async def _committed_up_to(
        self, connection: AsyncConnection, statements: _PostgresRound, highest: int, writers: list[str]
    ) -> int | None:
        """The highest outbox id below which every row is committed (or rolled back), from
        the highest id (`highest`) and the transactions then holding ROW EXCLUSIVE on the
        outbox (`writers`), read in that order.

        Ids are drawn at insert, but transactions commit in any order: a relay reading while
        id 100 is in flight and 101 committed would publish 101 first. A transaction that may
        still commit an outbox row holds ROW EXCLUSIVE on the outbox from before its insert
        draws an id: read the highest id, then wait (blocking no one) until the transactions
        holding that lock then have ended; ids drawn later are higher. (One statement reads
        both: its snapshot, which the highest id comes from, is taken before it reads the
        locks.) None when one of them runs past `WRITERS_WAIT_SECONDS` (a frozen peer, until
        the server ends its session)."""
        outbox = self._tables.outbox
        deadline = time.monotonic() + WRITERS_WAIT_SECONDS
        pause = 0.002
        while writers:
            if time.monotonic() > deadline:
                log.warning(
                    "outbox relay: a writer of the outbox is still open after %.0fs; next round",
                    WRITERS_WAIT_SECONDS,
                )
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)  # pg_locks takes every lock-manager partition: not too often
            writers = [
                row[0] for row in await statements.writers_left.fetch(connection, table=outbox.name, writers=writers)
            ]
        return highest

    async def _pending(self, session: AsyncSession | AsyncConnection, upto: int | None) -> list[_Row]:
        """The pending rows up to `upto` but for the lanes and topics waiting out a backoff."""
        outbox = self._tables.outbox
        # Usually no lane waits: the statement built once (and its cache key with it) serves.
        query = self._pending_up_to
        now = time.monotonic()
        waiting = [lane for lane, blocked in self._blocked.items() if blocked.retry_at > now]
        if keyed := [(topic, key) for topic, key, _ in waiting if key is not None]:
            # NOT IN is never true for a NULL key: rows without one are kept in explicitly.
            query = query.where(or_(outbox.c.key.is_(None), tuple_(outbox.c.topic, outbox.c.key).not_in(keyed)))
        if unkeyed := [row_id for _, key, row_id in waiting if key is None and row_id is not None]:
            query = query.where(outbox.c.id.not_in(unkeyed))
        if topics := [topic for topic, blocked in self._blocked_topics.items() if blocked.retry_at > now]:
            query = query.where(outbox.c.topic.not_in(topics))
        given = {"upto": _NO_CEILING if upto is None else upto}
        rows = [_Row(*row) for row in (await session.execute(query, given)).all()]
        await self._update_backlog_gauges(session, rows)
        return rows

    async def _claim(self, connection: AsyncConnection, upto: int, postgres: _PostgresRound) -> list[_Row]:
        """The pending rows up to `upto`, in id order, marked published by the round's
        transaction as they are read (one statement, where reading and marking after the
        send were two: the transaction commits only once Kafka has taken them, and what it
        did not take is unmarked before). Their `published_at` is the claim's instant, the
        send's length (milliseconds, `SEND_SECONDS` at most) before Kafka's acknowledgement.
        Only while no lane or topic has been refused since it last went (`_publish_postgresql`):
        one statement, unfiltered, serves."""
        assert not (self._blocked or self._blocked_topics), "a refused lane's rows are marked after the send"
        claimed = await postgres.claim.rows(connection, upto=upto, marked_at=datetime.now(UTC))
        rows = sorted((_Row(*row) for row in claimed), key=lambda row: row.id)  # RETURNING keeps no order
        await self._update_backlog_gauges(connection, rows, claimed=True)
        return rows

    def _claiming(self) -> Update:
        outbox, pending = self._tables.outbox, self._pending_up_to
        chosen = (
            func.unnest(func.array(pending.with_only_columns(outbox.c.id).scalar_subquery()))
            .table_valued("id")
            .render_derived("unionhub_chosen")
        )
        return (
            update(outbox)
            .values(published_at=bindparam("marked_at"))
            # The outbox joined to the chosen ids as an array: whatever the outbox's statistics
            # say of its pending rows, the planner takes the ids for a few rows and either looks
            # each up in the primary key or hashes them against the table. Joined to the
            # subquery itself, statistics taken while every row was published (no pending row)
            # made it a nested loop of the backlog × the batch; `id = ANY` of the array, a filter
            # of a scan of the whole table on a small outbox (each row against every id): seconds
            # a claim, with the relay's lock held (bench/README.md, round thirteen). No second
            # test of `published_at` on the row: the relay's lock keeps other rounds out.
            .where(outbox.c.id == chosen.c.id)
            .returning(*pending.selected_columns)
        )

    async def _send(self, rows: Sequence[Any]) -> list[Any]:
        """Sends `rows` in order; returns those Kafka took within `SEND_SECONDS`. A row it
        refuses stops its lane (the rows behind it on the same key) for this round and puts
        the lane on backoff; a topic whose metadata does not come, the whole topic.

        The rows go as record batches of their own, one or more a partition, each handed to
        the producer whole (`send_batch`): no future, task or accumulator lookup per record,
        which `producer.send` costs (about a tenth of membership's CPU draining a backlog)."""
        assert self._producer is not None, "the relay publishes only once started"
        failed: dict[Lane, BaseException] = {}
        deadline = time.monotonic() + SEND_SECONDS
        batches = await self._batch(rows, failed, deadline)
        in_flight: list[tuple[_Batch, asyncio.Future[Any]]] = []

        async def queue_partition(topic: str, partition: int, queue: list[_Batch]) -> None:
            assert self._producer is not None
            for i, batch in enumerate(queue):
                batch.builder.close()  # nothing else (a dead letter's `send`) joins it
                try:
                    # Queueing waits for the partition's previous batch to be sent (forever for a
                    # partition without leader): bounded, and no other partition waits for it.
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        future = await self._producer.send_batch(batch.builder, topic, partition=partition)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # This batch and the partition's later ones fail: their lanes keep their order.
                    for later in queue[i:]:
                        self._failed(later, exc, failed)
                    return
                in_flight.append((batch, future))

        await asyncio.gather(*(queue_partition(topic, partition, q) for (topic, partition), q in batches.items()))
        if in_flight:
            # What Kafka has not acknowledged by the deadline counts as not taken (it may still
            # arrive: sent again, it is a duplicate consumers skip). The transaction holding
            # the relay's lock must not idle past the server's limit.
            await asyncio.wait([f for _, f in in_flight], timeout=max(0.0, deadline - time.monotonic()))
        sent = []
        for batch, future in in_flight:
            if not future.done():
                error: BaseException | None = TimeoutError("no acknowledgement in time")
                future.add_done_callback(_settled)  # read its outcome when it comes: it is sent again anyway
            else:
                error = asyncio.CancelledError() if future.cancelled() else future.exception()
            if error is not None:
                self._failed(batch, error, failed)
                continue
            # Taken by Kafka: published, even behind a refused row of its lane (rare: the
            # producer failed an earlier batch of the partition after it sent this one).
            sent.extend(batch.rows)
            for row in batch.rows:
                if (lane := _lane(row)) not in failed:
                    self._blocked.pop(lane, None)
            self._blocked_topics.pop(batch.rows[0].topic, None)
        if failed:
            log.error(
                "outbox relay: Kafka did not take %d of %d events (their keys wait, with backoff): %s",
                len(failed),
                len(rows),
                describe_error(next(iter(failed.values()))),
            )
        return sent

    async def _batch(
        self, rows: Sequence[Any], failed: dict[Lane, BaseException], deadline: float
    ) -> dict[tuple[str, int], list[_Batch]]:
        """`rows` in record batches by (topic, partition), in order, but for the rows that
        cannot go (over the size bound, their topic unknown), whose lanes `failed` records."""
        assert self._producer is not None
        batches: dict[tuple[str, int], list[_Batch]] = {}
        topics: dict[str, tuple[list[int], list[int]] | None] = {}  # (all, available) partitions
        refused_topics: set[str] = set()
        for row in rows:
            lane = _lane(row)
            if lane in failed:
                continue
            if len(row.value) + len(row.key or "") > MAX_EVENT_BYTES:  # written before the bound existed
                # Not sent: a broker refusing it would break the idempotent producer's sequence
                # for every event of its partition.
                failed[lane] = EventTooLarge(f"outbox row {row.id} is over {MAX_EVENT_BYTES} bytes")
                self._refused(row, self._blocked, lane)
                continue
            if row.topic not in topics:
                topics[row.topic] = await self._partitions(row.topic, deadline)
            partitions = topics[row.topic]
            if partitions is None:  # no metadata: the topic
                failed[lane] = KafkaTimeoutError(f"no metadata for topic {row.topic}")
                if row.topic not in refused_topics:  # the topic's backoff grows once a round
                    refused_topics.add(row.topic)
                    self._refused(row, self._blocked_topics, row.topic)
                continue
            key = row.key.encode() if row.key is not None else None
            partition = self._partitioner(key, *partitions)
            queue = batches.setdefault((row.topic, partition), [])
            headers = _headers(row.traceparent)
            if not queue or queue[-1].builder.append(timestamp=None, key=key, value=row.value, headers=headers) is None:
                # The first record of a batch always fits (a larger one goes alone).
                queue.append(_Batch(self._producer.create_batch()))
                queue[-1].builder.append(timestamp=None, key=key, value=row.value, headers=headers)
            queue[-1].rows.append(row)
        return batches

    async def _partitions(self, topic: str, deadline: float) -> tuple[list[int], list[int]] | None:
        """The topic's partitions (all, available), waiting at most `METADATA_SECONDS` for
        metadata not known yet (a missing topic would hold the round for the request timeout)."""
        assert self._producer is not None
        cluster = self._producer.client.cluster
        if not cluster.partitions_for_topic(topic):
            try:
                async with asyncio.timeout(max(0.0, min(METADATA_SECONDS, deadline - time.monotonic()))):
                    await self._producer.partitions_for(topic)
            except asyncio.CancelledError:
                raise
            except Exception:
                return None
        every = sorted(cluster.partitions_for_topic(topic) or ())
        return (every, list(cluster.available_partitions_for_topic(topic))) if every else None

    def _failed(self, batch: _Batch, error: BaseException, failed: dict[Lane, BaseException]) -> None:
        for row in batch.rows:
            lane = _lane(row)
            if lane not in failed:
                failed[lane] = error
                self._refused(row, self._blocked, lane)

    def _refused(self, row: Any, blocked: dict[Any, _Blocked], what: Any) -> None:
        previous = blocked.get(what)
        backoff = self._lane_backoff.after(previous.backoff if previous else None)
        blocked[what] = _Blocked(time.monotonic() + backoff, backoff)
        self._metrics.outbox_send_errors.labels(row.topic).inc()

    def _mark_statement(self) -> Update:
        if self._mark is None:
            self._mark = self._set_published_at(bindparam("marked_at"))
        return self._mark

    def _set_published_at(self, value: Any) -> Update:
        """The update setting `published_at` to `value` on the rows of the ids given (`KEYS`)."""
        outbox = self._tables.outbox
        return where_in(update(outbox).values(published_at=value), outbox.c.id, self._sessions.kw["bind"].dialect)

    @staticmethod
    def _marked(rows: Sequence[_Row]) -> dict[str, Any]:
        return {KEYS: [row.id for row in rows], "marked_at": datetime.now(UTC)}

    async def _update_backlog_gauges(
        self, session: AsyncSession | AsyncConnection, rows: Sequence[Any], *, claimed: bool = False
    ) -> None:
        """The backlog's gauges from `rows`, the round's, and when needed the table (where
        `claimed` rows already show as published, to this transaction)."""
        holding_back = bool(self._blocked or self._blocked_topics)
        if holding_back:  # lanes left out of `rows` may hold older events
            outbox = self._tables.outbox
            oldest = await session.scalar(
                select(outbox.c.created_at)
                .where(outbox.c.published_at.is_(None))
                .order_by(*self._pending_order)
                .limit(1)
            )
        else:
            oldest = rows[0].created_at if rows else None
        self._metrics.outbox_oldest_age.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
        if not rows and not holding_back:
            self._metrics.outbox_backlog.set(0)
            return
        backlog = len(rows)
        if backlog == self._batch_size or holding_back:  # only then is there more than this batch to count
            if not holding_back and time.monotonic() - self._counted_at < BACKLOG_COUNT_SECONDS:
                return  # counted lately: the gauge keeps that figure until the next count
            backlog = await self._count_pending(session) + (len(rows) if claimed else 0)
            self._counted_at = time.monotonic()
        self._metrics.outbox_backlog.set(backlog)

    async def _count_pending(self, session: AsyncSession | AsyncConnection) -> int:
        outbox = self._tables.outbox
        count = await session.scalar(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))
        return int(count or 0)

    async def backlog(self) -> int:
        """Events not yet published."""
        async with self._sessions() as session:
            return await self._count_pending(session)
