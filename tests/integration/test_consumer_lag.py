"""Consumer lag is what the group has not committed yet, over every partition of the topic."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata

from tests.support import produce
from unionhub_runtime.lag import measure
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_lag_counts_the_messages_a_group_has_not_committed_on_any_partition(kafka: KafkaSettings) -> None:
    topic = kafka.topic_prefix + "evaluation.work-scores"  # 6 partitions
    group = kafka.topic_prefix + "lag-test"
    keys = [f"k{i}" for i in range(60)]
    await produce(kafka.bootstrap_servers, topic, [b"{}"] * len(keys), keys=keys)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    committer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    await committer.start()
    try:
        assert await lag_once_the_coordinator_answers(admin, reader, topic, group) == 60  # none committed

        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        ends = await reader.end_offsets(partitions)
        first, second = partitions[0], partitions[1]
        committer.assign(partitions)
        await committer.commit(
            {first: OffsetAndMetadata(ends[first], ""), second: OffsetAndMetadata(ends[second] - 1, "")}
        )
        assert await measure(admin, reader, topic, group) == 60 - ends[first] - (ends[second] - 1)
    finally:
        await committer.stop()
        await reader.stop()
        await admin.close()


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
