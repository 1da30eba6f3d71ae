"""Consumer lag per topic and group: high watermarks minus the group's committed offsets.

Read through the admin API for the whole group, not from this instance's assignment, so
every instance reports the same figure (dashboards take `max` across instances).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from .kafka import client_kwargs
from .logs import describe_error
from .settings import KafkaSettings

log = logging.getLogger(__name__)


class LagMonitor:
    def __init__(
        self,
        settings: KafkaSettings,
        watched: Sequence[tuple[str, str]],  # (topic, group) as named on the cluster
        gauge: Gauge,
        interval_seconds: float,
    ) -> None:
        self._settings = settings
        self._watched = list(watched)
        self._gauge = gauge
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
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

    async def _measure_until_failure(self) -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(self._settings))
        # A consumer without a group only reads watermarks; it never joins or commits.
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(self._settings))
        await admin.start()
        try:
            await consumer.start()
            try:
                while True:
                    for topic, group in self._watched:
                        lag = await measure(admin, consumer, topic, group)
                        self._gauge.labels(topic, group).set(lag)
                    await asyncio.sleep(self._interval)
            finally:
                await consumer.stop()
        finally:
            await admin.close()


async def measure(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, topic: str, group: str) -> int:
    """Messages of `topic` the group has not committed yet (all partitions)."""
    (described,) = await admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not partitions:
        return 0
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    lag = 0
    for tp in partitions:
        offset = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
        lag += max(0, ends[tp] - offset)
    return lag
