"""The consumer of a bulk stream (`Subscription.bulk`): aiokafka directly, two batches in flight.

A batch is fetched and decoded while the one before it is written, so the event loop's work
(parsing records, decoding) overlaps the database's (a statement running in PostgreSQL, or in
aiosqlite's thread). It is fetched and decoded a chunk at a time, the loop free in between:
the write's round trips (begin, statement, commit) are answered within a chunk's work, not
after the whole batch's, which made the two run one after the other. Offsets are committed
per partition only once the batch that read them is written (in the background: the next
write need not wait for the group coordinator), so a crash loses nothing; what a crash or a
rebalance brings again is written again and counted once, since a bulk scope deduplicates by a
key of its own. FastStream runs the other subscriptions; this one skips its per-batch and
per-record work (middlewares, header parsing), which on this stream cost as much as the
database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from .backoff import Backoff
from .kafka import client_kwargs
from .logs import describe_error
from .offsets import BackgroundCommits
from .pipeline import Pipeline
from .settings import ServiceSettings

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]
BULK_FETCH_BYTES = 2 * 1024 * 1024  # per partition and fetch: 6 partitions hold about 40,000 records
CHUNK_RECORDS = 500  # fetched and decoded at once: a few milliseconds of the event loop


class BulkConsumer:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        topic: str,  # as named on the cluster
        group: str,
        client_id: str,
        pipeline: Pipeline,
        max_records: int,
        retry: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._group = group
        self._client_id = client_id
        self._pipeline = pipeline
        self._max_records = max_records
        self._retry = retry  # how the service retries connecting at start
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._writing_from: Offsets = {}  # first offset per partition of the batch being written
        self._written: Offsets = {}  # what that batch settles once written (the next to read)
        self._commits = BackgroundCommits(topic)
        # The loop and a rebalance both settle: one at a time, so no offset is committed
        # while an earlier batch is still being written.
        self._settling = asyncio.Lock()
        self._revocations = 0  # a batch fetched before a revocation is read again, not written
        self._stopping = asyncio.Event()

    @property
    def healthy(self) -> bool:
        """Running (readiness: a consumer that died is not ready)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=self._group,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset=self._settings.auto_offset_reset,
            # Larger batches aggregate more (one write per worker month, not per item).
            max_partition_fetch_bytes=BULK_FETCH_BYTES,
            # A revocation waits for the batch being written: give it time before the
            # coordinator gives up on this member.
            rebalance_timeout_ms=60_000,
            **client_kwargs(self._settings.kafka),
        )
        self._consumer.subscribe([self._topic], listener=_SettleOnRevoke(self))
        await self._retry(self._consumer.start)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"bulk-{self._topic}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("bulk consumer of %s stopped: %s", self._topic, describe_error(exc), exc_info=exc)

    async def stop(self, timeout: float = 8.0) -> None:
        """Finishes the batch being written (within `timeout`) and commits it, then leaves.
        Never raises: the rest of the service must stop too."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:  # a write stuck on its database: rolled back, read again later
                for task in (self._task, self._writing):
                    if task is not None:
                        task.cancel()
                        with suppress(BaseException):
                            await task
            except Exception as exc:
                log.error("bulk consumer of %s failed while stopping: %s", self._topic, describe_error(exc))
            self._task = None
        await self._commits.flush()  # bounded: a coordinator away does not hold up the stop
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._consumer.stop(), 5.0)
            except Exception as exc:
                log.warning("bulk consumer of %s left its group uncleanly: %s", self._topic, describe_error(exc))
            self._consumer = None
        await self._commits.close()

    async def _run(self) -> None:
        assert self._consumer is not None
        backoff = Backoff(0.5, self._settings.retry_max_backoff_seconds)
        fetched_from: Offsets = {}
        while not self._stopping.is_set():
            revocations = self._revocations
            try:
                count, decoded, upto = await self._fetch(fetched_from, revocations)
                if not count:
                    await self.settle()
                    continue
                settled = await self.settle()
                if revocations != self._revocations:
                    # Partitions moved meanwhile: this batch is dropped, and not rewound to,
                    # since a new assignment reads from the committed offsets (a rewind to
                    # where this batch began would skip a batch before it that failed).
                    fetched_from = {}
                    continue
                if not settled:
                    # The batch before failed: read this one again too.
                    self._rewind(fetched_from)
                    fetched_from = {}
                    await backoff.sleep()  # a write failing again and again: not in a tight loop
                    continue
                self._writing_from, fetched_from = fetched_from, {}
                self._written = upto
                self._writing = asyncio.create_task(self._write(count, decoded))
                backoff.reset()
            except Exception as exc:
                log.error(
                    "bulk consumer of %s failed, reading again from what was not written: %s",
                    self._topic,
                    describe_error(exc),
                    exc_info=exc,
                )
                await self.settle()  # a healthy write under way is finished, not thrown away
                if revocations == self._revocations:  # else a new assignment reads from the commits
                    self._rewind(fetched_from)
                fetched_from = {}
                await backoff.sleep()
        await self.settle()

    async def _fetch(self, fetched_from: Offsets, revocations: int) -> tuple[int, tuple[list[Any], list[Any]], Offsets]:
        """The next batch, up to `max_records`, decoded: (how many records, what the pipeline
        applies, the offsets it settles). Fetched a chunk at a time, nothing waited for once the
        first chunk is there, and no more once partitions are revoked (the batch is dropped);
        `fetched_from` gets each partition's first offset as it comes (what a failure rewinds to)."""
        assert self._consumer is not None
        good: list[Any] = []
        invalid: list[Any] = []
        upto: Offsets = {}
        count, timeout_ms = 0, self._settings.batch_timeout_ms
        while count < self._max_records and revocations == self._revocations:
            fetched = await self._consumer.getmany(
                timeout_ms=timeout_ms, max_records=min(CHUNK_RECORDS, self._max_records - count)
            )
            if not fetched:
                break
            if revocations != self._revocations:
                # A new assignment's records (`getmany` waits out a rebalance), read from the
                # committed offsets: put back for the next batch, this one is dropped.
                for tp, records in fetched.items():
                    self._consumer.seek(tp, records[0].offset)
                break
            timeout_ms = 0
            chunk = []
            for tp, records in fetched.items():
                fetched_from.setdefault(tp, records[0].offset)
                upto[tp] = records[-1].offset + 1
                chunk += records
            chunk_good, chunk_invalid = await self._pipeline.decode(chunk)
            good += chunk_good
            invalid += chunk_invalid
            count += len(chunk)
            await asyncio.sleep(0)  # the write under way gets its answers
        return count, (good, invalid), upto

    async def _write(self, count: int, decoded: tuple[list[Any], list[Any]]) -> None:
        started = time.perf_counter()
        await self._pipeline.apply(*decoded)
        self._pipeline.observe_batch(count, time.perf_counter() - started)

    async def settle(self, *, revoking: bool = False) -> bool:
        """Waits for the batch being written, then commits its offsets (those of partitions
        still assigned: a revoked one's new owner reads from the last commit, harmlessly), in
        the background but for a revocation, which waits for the commit (bounded) so that the
        next owner does not read the batch again. False when the write failed: then its
        partitions are rewound to it."""
        async with self._settling:
            if revoking:
                self._revocations += 1
            settled = await self._settle_write()
            if revoking:
                await self._commits.flush()
            return settled

    async def _settle_write(self) -> bool:
        writing = self._writing
        if writing is None:
            return True
        # Not `await writing`: a cancellation of the waiter must not cancel the write, nor
        # one of the write reach the waiter (the group coordinator runs a revocation).
        await asyncio.wait({writing})
        self._writing = None
        failure = asyncio.CancelledError() if writing.cancelled() else writing.exception()
        if failure is not None:
            log.error("bulk write on %s failed, reading it again: %s", self._topic, describe_error(failure))
            self._rewind(self._writing_from)
            return False
        self._commit()
        return True

    def _rewind(self, offsets: Offsets) -> None:
        """Positions the consumer back on `offsets` (and on the batch being written, if any):
        local, it cannot fail on the network."""
        if self._consumer is None:
            return
        back = dict(offsets)
        for tp, offset in self._writing_from.items():
            back[tp] = min(offset, back.get(tp, offset))
        assigned = self._consumer.assignment()
        for tp, offset in back.items():
            if tp in assigned:
                self._consumer.seek(tp, offset)
        self._writing_from = {}

    def _commit(self) -> None:
        assert self._consumer is not None
        self._writing_from = {}
        if self._written:  # partitions revoked since are left out by the commits themselves
            self._commits.submit(self._consumer, self._written)


class _SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: BulkConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._consumer.settle(revoking=True)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
