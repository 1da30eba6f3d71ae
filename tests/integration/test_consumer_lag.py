"""Consumer lag is what the group has not committed yet, over every partition of the topic: in
messages, and in time as the age of the oldest such record by its Kafka timestamp."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import CoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from tests.support import eventually, produce
from unionhub_runtime.lag import Lag, LagMonitor, measure, measure_lag
from unionhub_runtime.metrics import RuntimeMetrics
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

TOLERANCE = 2.0  # seconds between our clock read and the measurement's, on one machine


async def test_lag_counts_the_messages_a_group_has_not_committed_on_any_partition(kafka: KafkaSettings) -> None:
    topic = kafka.topic_prefix + "evaluation.work-scores"  # 6 partitions
    group = kafka.topic_prefix + "lag-test"
    keys = [f"k{i}" for i in range(60)]
    await produce(kafka.bootstrap_servers, topic, [b"{}"] * len(keys), keys=keys)

    async with clients(kafka) as (admin, reader):
        assert await lag_once_the_coordinator_answers(admin, reader, topic, group) == 60  # none committed

        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        ends = await reader.end_offsets(partitions)
        first, second = partitions[0], partitions[1]
        await commit(kafka, group, {first: ends[first], second: ends[second] - 1})
        assert await measure(admin, reader, topic, group) == 60 - ends[first] - (ends[second] - 1)
        assert (await measure_lag(admin, reader, topic, group)).messages == 60 - ends[first] - (ends[second] - 1)


async def test_lag_in_time_is_the_age_of_the_oldest_record_a_paused_group_has_not_committed(
    kafka: KafkaSettings,
) -> None:
    topic, group = kafka.topic_prefix + "membership.commands", kafka.topic_prefix + "paused"
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    now = time.time()
    await produce_at(kafka, p0, [now - 600 + 10 * i for i in range(10)])  # offsets 0-9, 600 to 510 s old
    await produce_at(kafka, p1, [now - 300 + i for i in range(5)])  # offsets 0-4, 300 to 296 s old

    # A member of the group reads four records of partition 0, commits them, and stops reading.
    member = AIOKafkaConsumer(
        topic,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **connection(kafka),
    )
    await member.start()
    try:
        await eventually(lambda: assigned(member, p0), "the paused member's assignment")
        offsets: list[int] = []
        while len(offsets) < 4:
            read = await member.getmany(p0, timeout_ms=10_000, max_records=4 - len(offsets))
            assert read, "the member read nothing"
            offsets += [r.offset for r in read[p0]]
        assert offsets == [0, 1, 2, 3]
        await member.commit({p0: OffsetAndMetadata(4, "")})
        member.pause(*member.assignment())

        async with clients(kafka) as (admin, reader):
            # Out of time before any record is read: the messages, and no age rather than a wait.
            assert await measure_lag(admin, reader, topic, group, read_seconds=0) == Lag(
                messages=11, seconds=0.0, complete=False
            )

            lag = await measure_lag(admin, reader, topic, group)  # the same reader, cut short before
            assert lag.messages == 6 + 5
            assert lag.seconds == pytest.approx(time.time() - (now - 560), abs=TOLERANCE)  # offset 4 of p0

            await member.commit({p0: OffsetAndMetadata(10, "")})
            lag = await measure_lag(admin, reader, topic, group)
            assert lag.messages == 5
            assert lag.seconds == pytest.approx(time.time() - (now - 300), abs=TOLERANCE)  # offset 0 of p1

            await member.commit({p0: OffsetAndMetadata(10, ""), p1: OffsetAndMetadata(5, "")})
            assert await measure_lag(admin, reader, topic, group) == Lag(messages=0, seconds=0.0)
    finally:
        await member.stop()


async def test_a_committed_offset_on_a_transaction_marker_or_a_deleted_record_ages_the_next_record(
    kafka: KafkaSettings,
) -> None:
    topic, group = kafka.topic_prefix + "feedback.commands", kafka.topic_prefix + "gaps"
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    now = time.time()
    await produce_at(kafka, p0, [now - 100, now - 99, now - 98], transactional=True)  # offsets 0-2, marker 3

    async with clients(kafka) as (admin, reader):
        await commit(kafka, group, {p0: 3})  # every record; only the commit marker is left
        started = time.monotonic()
        assert await measure_lag(admin, reader, topic, group, read_seconds=5) == Lag(messages=1, seconds=0.0)
        assert time.monotonic() - started < 2, "a tail of markers must not wait for the whole read budget"

        await produce_at(kafka, p0, [now - 50])  # offset 4, after the marker
        lag = await measure_lag(admin, reader, topic, group)
        assert lag.seconds == pytest.approx(time.time() - (now - 50), abs=TOLERANCE)

        await produce_at(kafka, p1, [now - 500 + 10 * i for i in range(5)])  # offsets 0-4
        await commit(kafka, group, {p0: 3, p1: 1})
        await admin.delete_records({p1: RecordsToDelete(before_offset=3)})  # retention took 0-2
        lag = await measure_lag(admin, reader, topic, group)
        assert lag.messages == 2 + 4
        assert lag.seconds == pytest.approx(time.time() - (now - 470), abs=TOLERANCE)  # offset 3 of p1


async def test_the_lag_monitor_sets_both_gauges_for_every_watched_group(kafka: KafkaSettings) -> None:
    topic, group = kafka.topic_prefix + "evaluation.commands", kafka.topic_prefix + "watched"
    now = time.time()
    await produce_at(kafka, TopicPartition(topic, 2), [now - 120, now - 60])
    async with clients(kafka) as (admin, reader):
        await lag_once_the_coordinator_answers(admin, reader, topic, group)

    metrics = RuntimeMetrics(CollectorRegistry(), "tests")
    monitor = LagMonitor(kafka, [(topic, group)], metrics.consumer_lag, metrics.consumer_lag_seconds, 0.2)
    monitor.start()
    try:

        async def measured() -> bool:
            return metrics.registry.get_sample_value("unionhub_consumer_lag_messages", labels(topic, group)) == 2

        await eventually(measured, "the lag monitor's first figures")
        seconds = metrics.registry.get_sample_value("unionhub_consumer_lag_seconds", labels(topic, group))
        assert seconds == pytest.approx(time.time() - (now - 120), abs=TOLERANCE)
    finally:
        await monitor.stop()


# --- helpers ---------------------------------------------------------------------------------


def connection(kafka: KafkaSettings) -> dict[str, str]:
    return {"bootstrap_servers": kafka.bootstrap_servers}


def labels(topic: str, group: str) -> dict[str, str]:
    return {"topic": topic, "group": group}


async def assigned(member: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    return tp in member.assignment()  # the group join runs in the consumer's background


@asynccontextmanager
async def clients(kafka: KafkaSettings) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    """What an admin tool holds: an admin client and a consumer without a group."""
    admin = AIOKafkaAdminClient(**connection(kafka))
    reader = AIOKafkaConsumer(enable_auto_commit=False, **connection(kafka))
    await admin.start()
    await reader.start()
    try:
        yield admin, reader
    finally:
        await reader.stop()
        await admin.close()


async def produce_at(
    kafka: KafkaSettings, tp: TopicPartition, stamps: list[float], *, transactional: bool = False
) -> None:
    """One record per timestamp (epoch seconds, as a producer's clock would stamp them)."""
    producer = AIOKafkaProducer(
        enable_idempotence=True,
        transactional_id=f"lag-test-{uuid.uuid4().hex}" if transactional else None,
        **connection(kafka),
    )
    await producer.start()
    try:
        if transactional:
            await producer.begin_transaction()
        for stamp in stamps:
            await producer.send(tp.topic, b"{}", partition=tp.partition, timestamp_ms=int(stamp * 1000))
        if transactional:
            await producer.commit_transaction()
        await producer.flush()
    finally:
        await producer.stop()


async def commit(kafka: KafkaSettings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commits for `group` without joining it, as a member that has since stopped would have."""
    committer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **connection(kafka))
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await committer.stop()


async def lag_once_the_coordinator_answers(
    admin: AIOKafkaAdminClient, reader: AIOKafkaConsumer, topic: str, group: str
) -> int:
    # A fresh broker elects the group coordinator (creates __consumer_offsets) on first use.
    for _ in range(100):
        try:
            return await measure(admin, reader, topic, group)
        except CoordinatorNotAvailableError:
            await asyncio.sleep(0.2)
    raise AssertionError("the group coordinator never answered")
