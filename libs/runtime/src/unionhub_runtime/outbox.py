"""Transactional outbox: events are rows written with the state change, published after commit."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, insert, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unionhub_contracts import CONTENT_TYPE, OutgoingEvent

from .database import is_transient
from .logs import describe_error
from .metrics import RuntimeMetrics
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


async def bounded_send(producer: AIOKafkaProducer, topic: str, **record: Any) -> asyncio.Future[Any]:
    """`producer.send`, waiting at most `METADATA_SECONDS` for the metadata of a topic it does
    not know yet (a missing topic would hold it for the whole request timeout). Cancelling
    while it waits for metadata queues nothing, so a retry cannot double the record."""
    sending = producer.send(topic, **record)
    if not producer.client.cluster.partitions_for_topic(topic):
        sending = asyncio.wait_for(sending, METADATA_SECONDS)
    future: asyncio.Future[Any] = await sending  # a known topic: no task per record
    return future


class EventTooLarge(ValueError):
    """A handler produced an event larger than `MAX_EVENT_BYTES`: the command fails instead."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An event for the outbox and the trace context it continues."""

    event: OutgoingEvent
    traceparent: str | None = None


async def write(session: AsyncSession, tables: RuntimeTables, topic: str, pending: Sequence[Pending]) -> None:
    """Adds the `pending` events to the outbox inside the caller's transaction."""
    if not pending:
        return
    for p in pending:
        size = len(p.event.value) + len(p.event.key or "") + len(p.traceparent or "")
        if size > MAX_EVENT_BYTES:
            raise EventTooLarge(f"event {p.event.type} {p.event.id} is {size} bytes, over {MAX_EVENT_BYTES}")
    now = datetime.now(UTC)
    await session.execute(
        insert(tables.outbox),
        [
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
        ],
    )


def _headers(traceparent: str | None) -> list[tuple[str, bytes]]:
    return HEADERS if traceparent is None else [*HEADERS, (TRACEPARENT, traceparent.encode())]


Lane = tuple[str, str]  # (topic, key): what is published in order; a row without key is its own lane


def _lane(row: Any) -> Lane:
    return (row.topic, row.key if row.key is not None else f"#{row.id}")


@dataclass
class _Blocked:
    """A lane whose first event Kafka did not take: it waits until `retry_at`, the others go on."""

    retry_at: float
    backoff: float


class OutboxRelay:
    """Publishes unpublished outbox rows in insertion order, then marks them published.

    Woken right after each commit, and polls as a safety net (restart, another instance's
    rows). On PostgreSQL an advisory lock lets one relay at a time publish, which keeps the
    per-key order across instances, and each round publishes only up to the highest id every
    writer before it has committed (transactions may commit out of id order). A crash
    between send and mark publishes again: events are delivered at least once and consumers
    deduplicate by event id. An event Kafka does not take (too large, topic missing, not
    granted) holds back only the events behind it on its own key, retried with backoff.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        tables: RuntimeTables,
        metrics: RuntimeMetrics,
        poll_seconds: float = 1.0,
        retention_seconds: float = 86_400,
        batch_size: int = 2_000,
        write_lock: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._write_lock = write_lock or nullcontext()
        self._sessions = sessions
        self._tables = tables
        self._producer: AIOKafkaProducer | None = None
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._retention = timedelta(seconds=retention_seconds)
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_purge = datetime.min.replace(tzinfo=UTC)
        self._blocked: dict[Lane, _Blocked] = {}
        self._max_backoff = 5.0

    def notify(self) -> None:
        """Something was committed to the outbox: publish it now."""
        self._wake.set()

    def start(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Lets a publish under way finish (so it is marked), then stops."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                published = await self.publish_pending()
                await self._maybe_purge()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(level, "outbox relay failed, retrying in %.1fs: %s", backoff, describe_error(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published and not self._stopping:
                continue  # there may be more behind this batch
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def publish_pending(self) -> int:
        """Publishes one batch of pending events; returns how many."""
        started = time.perf_counter()
        async with self._sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                upto = await self._committed_up_to()
                if upto is None:
                    return 0
                async with session.begin():
                    # Held until commit: no other relay publishes between our send and mark.
                    locked = await session.scalar(
                        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _RELAY_LOCK_KEY}
                    )
                    if not locked:
                        return 0
                    rows = await self._pending(session, upto)
                    sent = await self._send(rows)
                    if sent:
                        # Losing this mark in a crash only publishes again (consumers
                        # deduplicate): no need to wait for the WAL flush on commit.
                        await session.execute(text("SET LOCAL synchronous_commit = off"))
                    await self._mark_published(session, sent)
            else:
                # SQLite has one relay (one process); keep its write lock off the Kafka round trip.
                await session.connection(execution_options={"readonly": True})  # begins
                rows = await self._pending(session, None)
                await session.commit()
                sent = await self._send(rows)
                async with self._write_lock, session.begin():
                    await self._mark_published(session, sent)
        if sent:
            self._metrics.db_seconds.labels("publish").observe(time.perf_counter() - started)
            for topic, count in collections.Counter(row.topic for row in sent).items():
                self._metrics.outbox_published.labels(topic).inc(count)
        return len(sent)

    async def _committed_up_to(self) -> int | None:
        """The highest outbox id below which every row is committed (or rolled back).

        Ids are taken at insert, but transactions commit in any order: a relay reading while
        id 100 is in flight and 101 committed would publish 101 first. SHARE mode waits for
        every transaction that has inserted into the outbox (they hold ROW EXCLUSIVE) and
        lets none insert meanwhile; released at once. None when that wait ran too long."""
        outbox = self._tables.outbox
        async with self._sessions() as session, session.begin():
            await session.execute(text("SET LOCAL lock_timeout = '1s'"))
            try:
                await session.execute(text(f"LOCK TABLE {outbox.name} IN SHARE MODE"))
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
                log.warning("outbox relay: writers held the outbox past the lock timeout; next round")
                return None
            return int(await session.scalar(select(func.coalesce(func.max(outbox.c.id), 0))) or 0)

    async def _pending(self, session: AsyncSession, upto: int | None) -> Sequence[Any]:
        outbox = self._tables.outbox
        query = (
            select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.traceparent,
                   outbox.c.created_at)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self._batch_size)
        )
        if upto is not None:
            query = query.where(outbox.c.id <= upto)
        now = time.monotonic()
        waiting = [lane for lane, blocked in self._blocked.items() if blocked.retry_at > now]
        keyed = [lane for lane in waiting if not lane[1].startswith("#")]
        if keyed:
            query = query.where(tuple_(outbox.c.topic, outbox.c.key).not_in(keyed))
        if unkeyed := [int(lane[1][1:]) for lane in waiting if lane[1].startswith("#")]:
            query = query.where(outbox.c.id.not_in(unkeyed))
        rows = (await session.execute(query)).all()
        await self._update_backlog_gauges(session, rows)
        return rows

    async def _send(self, rows: Sequence[Any]) -> list[Any]:
        """Sends `rows` in order; returns those Kafka took. A row it refuses stops its lane
        (the rows behind it on the same key) for this round and puts the lane on backoff."""
        assert self._producer is not None, "the relay publishes only once started"
        failed: dict[Lane, BaseException] = {}
        in_flight = []
        for row in rows:
            lane = _lane(row)
            if lane in failed:
                continue
            try:
                future = await bounded_send(self._producer, row.topic, value=row.value,
                                            key=row.key.encode() if row.key is not None else None,
                                            headers=_headers(row.traceparent))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed[lane] = exc
                self._refused(row, lane)
                continue
            in_flight.append((row, lane, future))
        results = await asyncio.gather(*(future for _, _, future in in_flight), return_exceptions=True)
        sent = []
        for (row, lane, _), result in zip(in_flight, results, strict=True):
            if isinstance(result, BaseException):
                if lane not in failed:
                    failed[lane] = result
                    self._refused(row, lane)
            else:
                # Taken by Kafka: published, even behind a refused row of its lane (rare: the
                # producer failed an earlier batch of the partition after it sent this one).
                sent.append(row)
                if lane not in failed:
                    self._blocked.pop(lane, None)
        if failed:
            log.error("outbox relay: Kafka did not take %d of %d events (their keys wait, with backoff): %s",
                      len(failed), len(rows), describe_error(next(iter(failed.values()))))
        return sent

    def _refused(self, row: Any, lane: Lane) -> None:
        previous = self._blocked.get(lane)
        backoff = min(previous.backoff * 2, self._max_backoff) if previous else 0.5
        self._blocked[lane] = _Blocked(time.monotonic() + backoff, backoff)
        self._metrics.outbox_send_errors.labels(row.topic).inc()

    async def _mark_published(self, session: AsyncSession, rows: Sequence[Any]) -> None:
        if rows:
            outbox = self._tables.outbox
            await session.execute(
                update(outbox)
                .where(outbox.c.id.in_([row.id for row in rows]))
                .values(published_at=datetime.now(UTC))
            )

    async def _update_backlog_gauges(self, session: AsyncSession, rows: Sequence[Any]) -> None:
        if self._blocked:  # lanes left out of `rows` may hold older events
            outbox = self._tables.outbox
            oldest = await session.scalar(select(outbox.c.created_at).where(outbox.c.published_at.is_(None))
                                          .order_by(outbox.c.id).limit(1))
        else:
            oldest = rows[0].created_at if rows else None
        self._metrics.outbox_oldest_age.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
        if not rows and not self._blocked:
            self._metrics.outbox_backlog.set(0)
            return
        backlog = len(rows)
        if backlog == self._batch_size or self._blocked:  # only then is there more than this batch to count
            backlog = await self._count_pending(session)
        self._metrics.outbox_backlog.set(backlog)

    async def _count_pending(self, session: AsyncSession) -> int:
        outbox = self._tables.outbox
        count = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
        return int(count or 0)

    async def backlog(self) -> int:
        """Events not yet published."""
        async with self._sessions() as session:
            return await self._count_pending(session)

    async def _maybe_purge(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_purge < timedelta(seconds=60):
            return
        self._last_purge = now
        outbox = self._tables.outbox
        async with self._write_lock, self._sessions() as session, session.begin():
            await session.execute(
                delete(outbox).where(outbox.c.published_at < now - self._retention)
            )
