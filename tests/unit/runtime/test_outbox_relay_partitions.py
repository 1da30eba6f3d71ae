"""The relay's round with one partition without leader (a broker down, replication factor 1):
its batch never drains, and aiokafka queues the partition's next batch only behind it. The
other partitions' events must still be taken and marked every round (review of round five:
the partitions were queued one after another, so every partition after the stuck one timed
out, was sent anyway and never marked). Real `MessageAccumulator`, a sender draining what has
a leader; no broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.structs import TopicPartition

from membership.adapters.orm import runtime_tables
from unionhub_runtime import outbox


class Cluster:
    def partitions_for_topic(self, _topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def available_partitions_for_topic(self, _topic: str) -> set[int]:
        return {1, 2, 3}

    def leader_for_partition(self, tp: TopicPartition) -> int | None:
        return None if tp.partition == 0 else 1


class Producer:
    def __init__(self) -> None:
        self.client = SimpleNamespace(cluster=Cluster())
        self.accumulator = MessageAccumulator(self.client.cluster, 256 * 1024, 0, 40.0)

    def create_batch(self) -> Any:
        return self.accumulator.create_builder()

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> Any:
        return await self.accumulator.add_batch(builder, TopicPartition(topic, partition), 40)

    async def sender(self) -> None:  # acknowledges at once whatever has a leader
        while True:
            nodes, _ = self.accumulator.drain_by_nodes(ignore_nodes=set())
            for batches in nodes.values():
                for batch in batches.values():
                    batch.done(0)
            await asyncio.sleep(0.01)


def key_on(partition: int) -> str:
    return next(k for n in range(1000) if DefaultPartitioner()((k := f"k{n}").encode(), [0, 1, 2, 3], []) == partition)


async def test_a_partition_without_leader_holds_back_only_its_own_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "SEND_SECONDS", 1.0)
    relay = outbox.OutboxRelay(sessions=MagicMock(), tables=runtime_tables, metrics=MagicMock())
    relay._producer = producer = Producer()  # type: ignore[assignment]
    sender = asyncio.create_task(producer.sender())
    ids = iter(range(1, 1_000))
    try:
        for _ in range(3):
            relay._blocked.clear()  # the stuck partition's key is tried again each round
            rows = [
                SimpleNamespace(id=next(ids), topic="t", key=key_on(p), value=b"x" * 100, traceparent=None)
                for p in (0, 1, 2, 3)  # the stuck partition's event first
            ]
            sent = await relay._send(rows)
            assert [row.key for row in sent] == [key_on(p) for p in (1, 2, 3)]
    finally:
        sender.cancel()
