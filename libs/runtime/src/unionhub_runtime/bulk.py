"""The consumer of a bulk stream (`Subscription.bulk`): aiokafka directly, two batches in flight.

A batch is decoded while the one before it is written, so the event loop's work (fetching,
decoding) overlaps the database's (a statement running in PostgreSQL, or in aiosqlite's
thread). Offsets are committed per partition only once the batch that read them is written,
so a crash loses nothing; what a crash or a rebalance brings again is written again and
counted once, since a bulk scope deduplicates by a key of its own. FastStream runs the
other subscriptions; this one skips its per-batch and per-record work (middlewares, header
parsing), which on this stream cost as much as the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from .backoff import Backoff
from .kafka import client_kwargs
from .logs import describe_error
from .pipeline import Pipeline
from .settings import ServiceSettings

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, int]


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
        self._written: Offsets = {}  # what the batch being written will have settled
        # The loop and a rebalance both settle: one at a time, so no offset is committed
        # while an earlier batch is still being written.
        self._settling = asyncio.Lock()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=self._group,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset=self._settings.auto_offset_reset,
            # Larger batches aggregate more (one write per worker month, not per item).
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **client_kwargs(self._settings.kafka),
        )
        self._consumer.subscribe([self._topic], listener=_SettleOnRevoke(self))
        await self._retry(self._consumer.start)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"bulk-{self._topic}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finishes the batch being written (within `timeout`) and commits it, then leaves."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:  # a write stuck on its database: rolled back, read again later
                self._task.cancel()
                with suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        assert self._consumer is not None
        backoff = Backoff(0.5, self._settings.retry_max_backoff_seconds)
        while not self._stopping.is_set():
            try:
                fetched = await self._consumer.getmany(
                    timeout_ms=self._settings.batch_timeout_ms, max_records=self._max_records
                )
                if not fetched:
                    await self._settle()
                    if not self._stopping.is_set():
                        await asyncio.sleep(0)
                    continue
                records = [record for batch in fetched.values() for record in batch]
                offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items()}
                decoded = await self._pipeline.decode(records)
                await self._settle()
                self._written = offsets
                self._writing = asyncio.create_task(self._write(records, decoded))
                backoff.reset()
            except Exception as exc:
                # Nothing past the last written batch was committed: read it all again.
                log.error(
                    "bulk consumer of %s failed, reading again from the committed offsets: %s",
                    self._topic,
                    describe_error(exc),
                )
                await self._abandon()
                await backoff.sleep()
        await self._settle()

    async def _write(self, records: list[Any], decoded: Any) -> None:
        started = time.perf_counter()
        await self._pipeline.apply(*decoded)
        self._pipeline.observe_batch(len(records), time.perf_counter() - started)

    async def _settle(self) -> None:
        """Waits for the batch being written, then commits its offsets (those of partitions
        still assigned: a revoked one's new owner reads from the last commit, harmlessly)."""
        async with self._settling:
            if self._writing is None:
                return
            try:
                await self._writing  # raises what the write raised: the caller reads again
            finally:
                self._writing = None
            await self._commit()

    async def _commit(self) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._written.items() if tp in assigned}
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:  # a rebalance between: the next owner reads them again
                log.warning("commit of %s offsets failed (read again later): %s", self._topic, describe_error(exc))

    async def _abandon(self) -> None:
        if self._writing is not None:
            self._writing.cancel()
            with suppress(BaseException):
                await self._writing
            self._writing = None
        if self._consumer is not None:
            for tp in self._consumer.assignment():
                with suppress(Exception):
                    await self._consumer.seek_to_committed(tp)


class _SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: BulkConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        with suppress(Exception):  # a failed write is read again by whoever owns it next
            await self._consumer._settle()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
