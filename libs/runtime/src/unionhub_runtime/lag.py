"""Consumer lag per topic and group, in messages and in time.

Messages: high watermarks minus the group's committed offsets. Time: the age of the oldest
record the group has not committed, from that record's Kafka timestamp (CreateTime, the
producer's clock). Read through the admin API and a group-less consumer for the whole group,
not from this instance's assignment, so every instance reports the same figures (dashboards
take `max` across instances).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from .kafka import client_kwargs
from .logs import describe_error
from .settings import KafkaSettings
from .shutdown import cancelled

log = logging.getLogger(__name__)

READ_SECONDS = 2.0  # reading the oldest records of one topic may take this long, no longer
POLL_SECONDS = 0.1  # between looks at the position: a tail of transaction markers has no record


@dataclass(frozen=True)
class Lag:
    """What a group has not committed on a topic: `messages` over all partitions, and
    `seconds`, the age of the oldest of them by its Kafka timestamp (0 when there is none)."""

    messages: int
    seconds: float
    complete: bool = True  # False: out of time before every lagging partition was read


class LagMonitor:
    def __init__(
        self,
        settings: KafkaSettings,
        watched: Sequence[tuple[str, str]],  # (topic, group) as named on the cluster
        messages: Gauge,
        seconds: Gauge,
        interval_seconds: float,
    ) -> None:
        self._settings = settings
        self._watched = list(watched)
        self._messages = messages
        self._seconds = seconds
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._last_age: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        if self._task is not None:
            await cancelled(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._measure_until_failure()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: keep the last figures, try again later
                log.warning("measuring consumer lag failed: %s", describe_error(exc))
            await asyncio.sleep(self._interval)

    def _age(self, topic: str, group: str, lag: Lag) -> float:
        """The age to show. A reading cut short is only a lower bound, and it is cut short
        when the broker or this process is slow, which is when lag grows: it never lowers the
        figure (the alert would stop firing), it can only raise it."""
        age = lag.seconds if lag.complete else max(lag.seconds, self._last_age.get((topic, group), 0.0))
        self._last_age[topic, group] = age
        return age

    async def _measure_until_failure(self) -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(self._settings))
        # A consumer without a group: it reads watermarks and one record per lagging partition,
        # never joins or commits. One partition per fetch, so the broker sends at least one
        # whole batch even past this size, and no more than about this much per partition.
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=64 * 1024,
            **client_kwargs(self._settings),
        )
        await admin.start()
        try:
            await consumer.start()
            try:
                while True:
                    for topic, group in self._watched:
                        lag = await measure_lag(admin, consumer, topic, group)
                        self._messages.labels(topic, group).set(lag.messages)
                        self._seconds.labels(topic, group).set(self._age(topic, group, lag))
                    await asyncio.sleep(self._interval)
            finally:
                await consumer.stop()
        finally:
            await admin.close()


async def measure(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, topic: str, group: str) -> int:
    """Messages of `topic` the group has not committed yet (all partitions); offsets only."""
    return sum(max(0, end - first) for first, _, end in (await _uncommitted(admin, consumer, topic, group)).values())


async def measure_lag(
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    topic: str,
    group: str,
    *,
    read_seconds: float = READ_SECONDS,
) -> Lag:
    """How far `group` is behind on `topic`: messages not committed, and the age in seconds of
    the oldest of them (now minus the oldest timestamp among each partition's first record at
    or after the committed offset, or the log start when nothing is committed).

    `admin` and `consumer` are started clients; `consumer` must have no group_id and be left
    to this function: it is assigned each lagging partition in turn, sought, read one record
    (one fetch of up to its `max_partition_fetch_bytes`), then unassigned. Reading stops after
    `read_seconds`, whatever the broker does: partitions not read by then are left out, so
    `seconds` is then a lower bound (a debug line says so).
    """
    partitions = await _uncommitted(admin, consumer, topic, group)
    messages = sum(max(0, end - first) for first, _, end in partitions.values())
    stamps: list[float] = []
    complete = True
    try:
        async with asyncio.timeout(read_seconds):
            for tp, (first, start, end) in partitions.items():
                if max(first, start) < end:  # else fully committed: no age
                    stamps += await _first_timestamp(consumer, tp, max(first, start), end)
    except TimeoutError:
        complete = False
        log.debug("consumer lag of %s on %s: out of time after %.1f s, a lower bound", group, topic, read_seconds)
    finally:
        consumer.unsubscribe()  # no fetching in the background until the next measurement
    return Lag(messages, max(0.0, time.time() - min(stamps)) if stamps else 0.0, complete)


async def _uncommitted(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, topic: str, group: str
) -> dict[TopicPartition, tuple[int, int, int]]:
    """Per partition: (first offset not committed, log start, high watermark)."""
    (described,) = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not partitions:
        return {}
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    found = {}
    for tp in sorted(partitions):
        done = committed.get(tp)
        first = done.offset if done is not None and done.offset >= 0 else starts[tp]
        found[tp] = (first, starts[tp], ends[tp])
    return found


async def _first_timestamp(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, end: int) -> list[float]:
    """The timestamp (epoch seconds) of the first record at or after `offset`; none when only
    transaction markers lie before `end` (compacted gaps are skipped by the fetch itself)."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    while True:
        fetched = await consumer.getmany(tp, timeout_ms=int(POLL_SECONDS * 1000), max_records=1)
        for record in fetched.get(tp, []):
            return [record.timestamp / 1000] if record.timestamp >= 0 else []
        if await consumer.position(tp) >= end:
            return []  # markers skipped, nothing left to read
