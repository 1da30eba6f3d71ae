"""The consuming side: a batch of records becomes one transaction (group commit).

Per record: decode (dead-letter what cannot be; skip and count an event of a type this
version does not know), skip ids already applied (inbox), apply it
through the subscription's batch scope (a rejected command is taken back alone: see
`unit_of_work`), hold what misses a prerequisite, and write every event it causes to the
outbox. Offsets are committed only after this returns, so nothing is lost.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unionhub_contracts import MESSAGES, CloudEvent, CommandRejected, DecodeError, OutgoingEvent, decode
from unionhub_contracts.codec import DecodeErrorCode, Headers
from unionhub_domain import Missing, Rejected, RejectionCode

from . import failpoints, inbox, outbox, tracing
from .backoff import Backoff
from .database import is_statement_timeout, is_transient
from .deadletters import DeadLetters
from .holding import QUEUE, HoldContext, Holding
from .inserts import InsertsTogether
from .logs import correlation_id, describe_error
from .metrics import OTHER, RuntimeMetrics
from .reads import ReadsTogether
from .scopes import BatchScope, BulkScope, Emit, ScopeFactory, encode_emit
from .tables import RuntimeTables

log = logging.getLogger(__name__)

# The `type` label of `unionhub_events_skipped_total` comes from the wire (any sender may
# write any string up to the envelope's 128 characters), and a counter's series live as long
# as the process. So a name is cut to MAX_TYPE_LABEL characters, and past MAX_SKIPPED_TYPES
# distinct names per topic the rest are counted under OTHER: a rollout brings one or two new
# types, seen first, and keeps its own series; a sender writing random types adds at most
# this many series per topic, never one per message. (The log line names each one.)
MAX_TYPE_LABEL = 64
MAX_SKIPPED_TYPES = 20

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Decoder: TypeAlias = Callable[[bytes | None, Headers | None], Any]  # raises DecodeError


@dataclass
class PipelineConfig:
    consumer: str  # inbox namespace
    topic: str  # the contract's topic name, which selects the decoder
    events_topic: str  # where events go, as named on the cluster (prefix included)
    source: str
    rejects: bool  # commands: publish command.rejected; events: log and move on
    handler_attempts: int = 3
    max_backoff_seconds: float = 5.0
    # A high-volume stream: its scope (a `BulkScope`) takes the batch's values at once and
    # deduplicates by a key of its own (work items by item_id), so no inbox row, no span and
    # no outcome per record.
    bulk: bool = False


class Pipeline:
    def __init__(
        self,
        config: PipelineConfig,
        *,
        scope: ScopeFactory,
        sessions: async_sessionmaker[AsyncSession],
        tables: RuntimeTables,
        dead_letters: DeadLetters,
        metrics: RuntimeMetrics,
        on_commit: Callable[[], None],
        on_health: Callable[[bool], None] = lambda ok: None,
        write_lock: AbstractAsyncContextManager[Any] | None = None,
        holding: Holding | None = None,
        decoder: Decoder | None = None,
    ) -> None:
        self._holding = holding
        self._decode: Decoder = decoder or functools.partial(decode, config.topic)
        if config.bulk:
            (self._bulk_type,) = MESSAGES[config.topic]  # a bulk stream carries one message type
        self._write_lock = write_lock or nullcontext()
        self.config = config
        self._scope = scope
        self._sessions = sessions
        self._tables = tables
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._on_commit = on_commit
        self._on_health = on_health
        self._skipped_types: set[str] = set()  # `type` labels of events skipped so far

    async def process(self, records: Sequence[Record]) -> None:
        """Settles every record of the batch, or raises (then nothing is committed)."""
        started = time.perf_counter()
        await self.apply(*await self.decode(records))
        self.observe_batch(len(records), time.perf_counter() - started)

    def observe_batch(self, size: int, seconds: float) -> None:
        self._metrics.batch_size.labels(self.config.topic).observe(size)
        self._metrics.batch_seconds.labels(self.config.topic).observe(seconds)

    async def decode(self, records: Sequence[Record]) -> tuple[list[tuple[Record, Any]], list[outbox.Pending]]:
        """The batch's decoded records, and the answers to those that cannot be (each is
        dead-lettered here, but for an event of a type this version does not know: skipped)."""
        topic = self.config.topic
        good: list[tuple[Record, Any]] = []  # CloudEvents, or what a bulk stream's decoder gives
        invalid: list[outbox.Pending] = []
        decode_one = self._decode
        for record in records:
            try:
                good.append((record, decode_one(record.value, record.headers)))
            except DecodeError as exc:
                if self._skips(exc):
                    self._skip(record, exc)
                    continue
                await self._dead_letter(record, exc.code, exc.message)
                self._metrics.messages_processed.labels(topic, "dead_lettered").inc()
                if self.config.rejects and exc.event_id and exc.event_type:
                    rejection = self._rejection(
                        exc.event_id, exc.event_source, exc.event_type, RejectionCode.INVALID, exc.message
                    )
                    invalid.append(outbox.Pending(rejection, tracing.traceparent_of(record.headers)))
        return good, invalid

    def _skips(self, exc: DecodeError) -> bool:
        """An event of a type this version does not know, from a producer upgraded before it:
        skipped (the contract lets producers go first), not dead-lettered, as it is no fault
        for anyone to fix. A commands topic dead-letters it (its sender must hear), and so
        does a value with no readable id and type: not an event at all."""
        return (
            not self.config.rejects
            and exc.code is DecodeErrorCode.UNKNOWN_TYPE
            and exc.event_id is not None
            and exc.event_type is not None
        )

    def _skip(self, record: Record, exc: DecodeError) -> None:
        """Counts and logs (ids and type, never the payload) a skipped event; its offset is
        committed with the batch's like any applied record's."""
        log.warning(
            "skipped event %s from %s on %s@%s:%s: type %r is unknown to this version",
            exc.event_id,
            exc.event_source,
            record.topic,
            record.partition,
            record.offset,
            exc.event_type,  # at most 128 characters (the envelope's limit)
        )
        topic, label = self.config.topic, str(exc.event_type)[:MAX_TYPE_LABEL]
        if label not in self._skipped_types:
            if len(self._skipped_types) < MAX_SKIPPED_TYPES:
                self._skipped_types.add(label)
            else:
                label = OTHER
        self._metrics.events_skipped.labels(topic, label).inc()
        self._metrics.messages_processed.labels(topic, "skipped").inc()

    async def apply(self, good: list[tuple[Record, Any]], invalid: list[outbox.Pending]) -> None:
        """Applies the batch in one transaction; isolates a failing record when that fails."""
        if not good and not invalid:
            return
        try:
            await self._with_retries(lambda: self._transaction(good, invalid))
        except _GiveUp:
            # One record keeps failing: apply the others one by one, dead-letter the culprit.
            if invalid:
                await self._with_retries(lambda: self._transaction([], invalid))
            if self.config.bulk:  # thousands of records: halve until the culprit is alone
                await self._bisect(good)
                good = []
            for item in good:

                def alone(item: tuple[Record, Any] = item) -> Awaitable[None]:
                    return self._transaction([item], [])

                try:
                    await self._with_retries(alone)
                except _GiveUp as failure:
                    await self._failed_alone(item[0], failure.cause)
        failpoints.hit("consume.committed")
        self._on_commit()

    async def _bisect(self, good: list[tuple[Record, Any]]) -> None:
        """Applies `good` (which failed as a whole) half by half, in order, down to the
        record that fails alone, which is dead-lettered: a few dozen transactions for a
        batch of 10,000, not 10,000."""
        half = len(good) // 2
        for part in (good[:half], good[half:]) if half else (good,):
            try:
                await self._with_retries(lambda part=part: self._transaction(part, []))  # type: ignore[misc]
            except _GiveUp as failure:
                if len(part) > 1:
                    await self._bisect(part)
                    continue
                await self._failed_alone(part[0][0], failure.cause)

    async def _failed_alone(self, record: Record, cause: BaseException) -> None:
        log.error(
            "handler failed on %s@%s:%s: %s", record.topic, record.partition, record.offset, describe_error(cause)
        )
        await self._dead_letter(record, "handler_error", describe_error(cause))

    async def _dead_letter(self, record: Record, code: str, message: str) -> None:
        """Copies `record` to its DLQ, retrying (not ready meanwhile) until the DLQ takes it:
        raising would rewind the batch and copy the records dead-lettered before it again."""
        backoff, failed = Backoff(0.5, self.config.max_backoff_seconds), False
        while True:
            try:
                await self._dead_letters.send(record, code, message)
                break
            except Exception as exc:
                failed = True
                self._on_health(False)
                self._metrics.retries.labels(record.topic, "dead_letter").inc()
                log.error(
                    "cannot dead-letter %s@%s:%s (%s) to %s.dlq, retry in %.1fs: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    code,
                    record.topic,
                    backoff.delay,
                    describe_error(exc),
                )
                await backoff.sleep()
        if failed:
            self._on_health(True)
        self._metrics.dead_letters.labels(record.topic, code).inc()

    async def _with_retries(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Transient failures are retried with backoff until they pass; others a few times."""
        backoff, failures, timeouts = Backoff(0.05, self.config.max_backoff_seconds), 0, 0
        while True:
            try:
                await attempt()
                self._on_health(True)
                return
            except Exception as exc:
                transient = is_transient(exc)
                if transient and is_statement_timeout(exc):
                    # The server's limit is not an outage: a batch that ran past it this many
                    # times is split like a failing one (its culprit dead-lettered).
                    timeouts += 1
                    if timeouts >= self.config.handler_attempts:
                        raise _GiveUp(exc) from exc
                reason = "transient" if transient else "handler_error"
                self._metrics.retries.labels(self.config.topic, reason).inc()
                if transient:
                    self._on_health(False)
                else:
                    failures += 1
                    if failures >= self.config.handler_attempts:
                        raise _GiveUp(exc) from exc
                log.warning(
                    "batch on %s failed (%s), retry in %.2fs: %s",
                    self.config.topic,
                    reason,
                    backoff.delay,
                    describe_error(exc),
                )
                await backoff.sleep()

    async def _transaction(self, good: list[tuple[Record, Any]], invalid: list[outbox.Pending]) -> None:
        if self.config.bulk:
            return await self._bulk_transaction([value for _, value in good], invalid)
        started = time.perf_counter()
        outcomes: collections.Counter[tuple[str, str, str]] = collections.Counter()  # (type, outcome, code)
        traced = tracing.recording()  # once a batch: the lookup is not free
        async with self._write_lock, self._sessions() as session, session.begin():
            scope, todo, holds = await self._claim_and_read(session, good, outcomes)
            outgoing = list(invalid)
            if holds is not None:
                holds.use_scope(self.config.consumer, scope)
            for record, event in todo:
                token = correlation_id.set(event.correlationid or event.id)
                try:
                    if holds is not None and (lane := holds.queued_behind(self.config.consumer, event)):
                        outcome = Outcome("held", "", (), QUEUE + lane)
                        traceparent = tracing.traceparent_of(record.headers)
                    elif traced:
                        with tracing.processing(
                            self.config.source, self.config.topic, record.headers, event.type
                        ) as traceparent:
                            outcome = await self.apply_one(scope, event)
                    else:
                        outcome = await self.apply_one(scope, event)
                        # Not recording: pass the sender's context on unchanged.
                        traceparent = tracing.traceparent_of(record.headers) if outcome.emitted else None
                    outcomes[event.type, outcome.kind, outcome.code] += 1
                    if outcome.waiting_for is not None:
                        assert holds is not None, "only a pipeline with holding raises Missing unfinal"
                        outgoing.append(await holds.hold(self.config.consumer, event, traceparent, outcome.waiting_for))
                        continue
                    outgoing.extend(outbox.Pending(self.encode(e, event), traceparent) for e in outcome.emitted)
                    if holds is not None and outcome.kind == "applied":
                        outgoing.extend(await holds.release(holds.provided(event, outcome.emitted)))
                finally:
                    correlation_id.reset(token)
            # The batch's inserts (its aggregates', the outbox's) in one statement on PostgreSQL.
            async with InsertsTogether(session) as together:
                await scope.flush(together)
                await outbox.write(session, self._tables, self.config.events_topic, outgoing, together)
        self._metrics.db_seconds.labels("consume").observe(time.perf_counter() - started)
        self._count(outcomes)
        scope.committed()
        if holds is not None:
            holds.committed()

    async def _claim_and_read(
        self, session: AsyncSession, good: list[tuple[Record, Any]], outcomes: collections.Counter[tuple[str, str, str]]
    ) -> tuple[BatchScope, list[tuple[Record, Any]], HoldContext | None]:
        """Claims the batch's messages in the inbox and reads what applying them needs (the
        scope's lookups, the held lanes): on PostgreSQL one statement (`ReadsTogether`).
        Returns the scope, the messages to apply (the others, applied before, are counted in
        `outcomes`) and the holds."""
        scope = cast(BatchScope, self._scope(session))
        events = [event for _, event in good]
        # In the batch's order: two owners of a partition claiming at once wait, never deadlock.
        keys = list(dict.fromkeys((e.source, e.id) for e in events))
        reads = ReadsTogether(session)
        claimed = inbox.claim_together(reads, session, self._tables, self.config.consumer, keys)
        holding = (
            self._holding.begin_together(reads, session, self.config.consumer, events)
            if self._holding is not None
            else None
        )
        await scope.prefetch(events, reads)
        await reads.run_rest()
        failpoints.hit("inbox.claimed")
        fresh = claimed.value
        all_fresh = len(fresh) == len(keys)
        todo = []
        for record, event in good:
            if (event.source, event.id) in fresh:
                fresh.discard((event.source, event.id))  # the same message twice in one batch: once
                todo.append((record, event))
            else:
                outcomes[event.type, "duplicate", ""] += 1
        holds = None if holding is None else holding.value
        if todo and not all_fresh:
            # Some were applied before, perhaps by a transaction the claim waited for (a
            # partition's previous owner, still applying them), committed after the
            # statement's snapshot, which its reads saw: read again, for the others only.
            scope = cast(BatchScope, self._scope(session))
            fresh_events = [event for _, event in todo]
            await scope.prefetch(fresh_events)
            if self._holding is not None:
                holds = await self._holding.begin(session, self.config.consumer, fresh_events)
        return scope, todo, holds

    async def _bulk_transaction(self, values: list[Any], invalid: list[outbox.Pending]) -> None:
        started = time.perf_counter()
        async with self._write_lock, self._sessions() as session, session.begin():
            scope = cast(BulkScope, self._scope(session))
            await scope.ingest(values)
            await outbox.write(session, self._tables, self.config.events_topic, invalid)
        self._metrics.db_seconds.labels("consume").observe(time.perf_counter() - started)
        if values:
            self._count(collections.Counter({(self._bulk_type, "applied", ""): len(values)}))

    def _count(self, outcomes: collections.Counter[tuple[str, str, str]]) -> None:
        topic = self.config.topic
        for (event_type, outcome, code), n in outcomes.items():
            self._metrics.messages_processed.labels(topic, outcome).inc(n)
            if outcome == "duplicate":
                self._metrics.inbox_duplicates.labels(topic).inc(n)
            else:
                self._metrics.commands.labels(event_type, outcome, code).inc(n)

    def scope(self, session: AsyncSession) -> BatchScope:
        return cast(BatchScope, self._scope(session))

    async def apply_one(self, scope: BatchScope, event: CloudEvent[Any], *, final: bool = False) -> Outcome:
        """What one message does. A missing prerequisite holds it (`waiting_for` set) unless
        the pipeline does not hold or `final` (its hold ended): then it is a rejection."""
        try:
            # Without holding, a missing prerequisite is a rejection at once: the scope records it as one.
            return Outcome("applied", "", await scope.handle(event, final=final or self._holding is None))
        except Rejected as rejection:
            if isinstance(rejection, Missing) and not final and self._holding is not None:
                return Outcome("held", "", (), rejection.waiting_for)
            if not self.config.rejects:
                log.warning("event %s (%s) ignored: %s", event.id, event.type, rejection)
                return Outcome("ignored", rejection.code, ())
            data = CommandRejected(
                command_id=event.id, command_type=event.type, code=rejection.code, reason=rejection.reason
            )
            return Outcome("rejected", rejection.code, (Emit("command.rejected", data, key=event.id),))

    def encode(self, emit: Emit, answering: CloudEvent[Any]) -> OutgoingEvent:
        """`emit` as an answer to the message `answering`."""
        return self._encode(emit, answering.correlationid or answering.id, answering.source)

    def _encode(self, emit: Emit, correlation_id: str, correlation_source: str | None) -> OutgoingEvent:
        return encode_emit(
            emit, source=self.config.source, correlation_id=correlation_id, correlation_source=correlation_source
        )

    def _rejection(
        self, command_id: str, command_source: str | None, command_type: str, code: str, reason: str
    ) -> OutgoingEvent:
        data = CommandRejected(command_id=command_id, command_type=command_type, code=code, reason=reason)
        return self._encode(Emit("command.rejected", data, key=command_id), command_id, command_source)


@dataclass(frozen=True)
class Outcome:
    kind: str  # applied, rejected, ignored, held
    code: str  # the rejection code, or ""
    emitted: Sequence[Emit]
    waiting_for: str | None = None  # held: the prerequisite (or queue) it waits for


class _GiveUp(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe_error(cause))
        self.cause = cause
