"""Topics as configuration (issue 18, point 7), on the real broker: `ensure_topics` brings a
topic made by an older release to what the catalogue declares (configs altered, partitions
added, overrides set by hand kept, partitions never removed), and a second run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support import eventually
from unionhub_contracts import TOPICS, Topic
from unionhub_contracts.catalogue import DAY_MS
from unionhub_runtime import kafka
from unionhub_runtime.kafka import ensure_topics
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

ORDERS = Topic("orders", 6, "A topic of this test's own.")
HOUR_MS = 3_600_000


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def overrides(admin: AIOKafkaAdminClient, name: str) -> dict[str, str]:
    """The configs set on the topic itself (config_source 1), not inherited from the broker."""
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    (resource,) = response.resources
    return {entry[0]: entry[1] for entry in resource[4] if entry[3] == 1}


async def partition_count(admin: AIOKafkaAdminClient, name: str) -> int:
    (described,) = await admin.describe_topics([name])
    return len(described["partitions"])


async def test_a_topic_of_an_older_release_is_brought_to_the_catalogue_and_a_second_run_changes_nothing(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"r{uuid.uuid4().hex[:10]}.")
    replicas = settings.replication_factor  # 1 on one broker, 3 with KAFKA_MODE=cluster
    in_sync = str(max(1, min(ORDERS.min_insync_replicas, replicas - 1)))
    main, dlq = settings.topic_prefix + ORDERS.name, settings.topic_prefix + ORDERS.dlq
    # As an older release left them: fewer partitions, an hour's retention, nothing on the
    # DLQ; an operator set segment.ms by hand, and gave the DLQ 3 partitions.
    await admin.create_topics(
        [
            NewTopic(main, 3, replicas, topic_configs={"retention.ms": str(HOUR_MS), "segment.ms": str(HOUR_MS)}),
            NewTopic(dlq, 3, replicas),
        ]
    )

    changes = await ensure_topics(settings, [ORDERS])

    assert changes.created == []
    assert changes.partitions == {}  # keys would move to other partitions: only when asked
    assert await partition_count(admin, main) == 3
    grown = await ensure_topics(settings, [ORDERS], add_partitions=True)
    assert grown.partitions == {main: (3, 6)} and not grown.altered
    assert changes.altered[main] == {
        "retention.ms": (str(HOUR_MS), str(7 * DAY_MS)),
        "min.insync.replicas": (None, in_sync),
    }
    assert changes.altered[dlq]["retention.ms"] == (None, str(30 * DAY_MS))
    assert changes.kept == [
        f"{main}: 3 partitions, the catalogue asks 6: not added (keys would move); add them with "
        "--add-partitions once every group's lag is 0",
        f"{dlq}: 3 partitions, the catalogue asks 1",  # never reduced
    ]
    assert await partition_count(admin, main) == 6
    assert await partition_count(admin, dlq) == 3
    assert await overrides(admin, main) == {
        "retention.ms": str(7 * DAY_MS),
        "min.insync.replicas": in_sync,
        "segment.ms": str(HOUR_MS),  # set by hand: kept
    }
    assert await overrides(admin, dlq) == {
        "retention.ms": str(30 * DAY_MS),
        "min.insync.replicas": in_sync,
        "max.message.bytes": str(settings.max_request_bytes),
    }

    again = await ensure_topics(settings, [ORDERS])
    assert not again.changed and again.kept == [f"{dlq}: 3 partitions, the catalogue asks 1"]


async def test_a_retention_set_longer_by_hand_is_kept_not_shortened(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"k{uuid.uuid4().hex[:10]}.")
    main = settings.topic_prefix + ORDERS.name
    await admin.create_topics([NewTopic(main, 6, settings.replication_factor, topic_configs={"retention.ms": "-1"})])
    changes = await ensure_topics(settings, [ORDERS])
    assert f"{main}: retention.ms -1 kept, longer than the catalogue's {7 * DAY_MS} (shortening it deletes data)" in (
        changes.kept
    )
    assert (await overrides(admin, main))["retention.ms"] == "-1"


async def test_a_missing_topic_is_created_with_the_catalogues_configs(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"n{uuid.uuid4().hex[:10]}.")
    changes = await ensure_topics(settings, [ORDERS])
    main, dlq = settings.topic_prefix + ORDERS.name, settings.topic_prefix + ORDERS.dlq
    assert changes.created == [main, dlq] and not changes.altered and not changes.partitions
    assert (await partition_count(admin, main), await partition_count(admin, dlq)) == (6, 1)
    assert (await overrides(admin, main))["retention.ms"] == str(7 * DAY_MS)
    assert (await overrides(admin, dlq))["retention.ms"] == str(30 * DAY_MS)
    assert not (await ensure_topics(settings, [ORDERS])).changed


def test_the_topics_command_reports_what_it_changed_then_nothing(kafka_bootstrap: str) -> None:
    prefix = f"c{uuid.uuid4().hex[:10]}."
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix}

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "unionhub_runtime.topics"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    first = run()
    assert first[-1] == f"topics: {2 * len(TOPICS)} created, 0 changed, 0 as declared"
    assert f"created {prefix}membership.commands.dlq" in first
    assert run() == [f"topics: 0 created, 0 changed, {2 * len(TOPICS)} as declared"]


async def test_an_override_set_by_hand_while_the_tool_runs_is_kept(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool changes only the configs it declares (IncrementalAlterConfigs): an operator's
    override made after the tool read the topic, before it wrote, is not reset."""
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"h{uuid.uuid4().hex[:10]}.")
    main = settings.topic_prefix + ORDERS.name
    await admin.create_topics([NewTopic(main, 6, settings.replication_factor)])
    read = kafka._topic_overrides

    async def read_then_an_operator_writes(*args: object) -> dict[str, dict[str, str]]:
        overrides_read = await read(*args)
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, main, {"segment.ms": str(HOUR_MS)})])
        return overrides_read

    monkeypatch.setattr(kafka, "_topic_overrides", read_then_an_operator_writes)
    changes = await ensure_topics(settings, [ORDERS])
    assert main in changes.altered

    async def kept() -> bool:
        # A describe may be answered from metadata a few milliseconds behind the last write (KRaft).
        return (await overrides(admin, main)).get("segment.ms") == str(HOUR_MS)

    await eventually(kept, what="the operator's segment.ms on the topic", timeout=10, step=0.1)
