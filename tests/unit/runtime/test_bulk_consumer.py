"""The bulk consumer (`unionhub_runtime.bulk`) against a consumer and a pipeline of its own
making: every record is written before its offset is committed, whatever fails and whenever
the group rebalances."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from aiokafka import TopicPartition

from unionhub_runtime import bulk

P = TopicPartition("t", 0)
END = 4_000


class RebalancingConsumer:
    """One partition; a rebalance starts while the next batch is being fetched (aiokafka's
    `getmany` waits for the new assignment), and the new assignment reads from the committed
    offset, its first fetch not back yet."""

    def __init__(self, rebalance_at: int, first_fetch_back: bool = False) -> None:
        self.position = 0
        self.first_fetch_back = first_fetch_back  # the new assignment's records come at once
        self.committed: dict[TopicPartition, int] = {}
        self.rebalance_at = rebalance_at
        self.reassigning: asyncio.Event | None = None
        self.fresh = False
        self.listener: Any = None
        self.rebalancing: asyncio.Task[None] | None = None

    def assignment(self) -> set[TopicPartition]:
        return {P}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if self.position == self.rebalance_at and self.reassigning is None:
            self.reassigning = asyncio.Event()
            self.rebalancing = asyncio.create_task(self._rebalance(self.reassigning))
        if self.reassigning is not None:
            await self.reassigning.wait()
        if self.fresh:
            self.fresh = False
            return {}
        if self.position >= END:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        records = [
            types.SimpleNamespace(offset=o, value=o)
            for o in range(self.position, min(self.position + max_records, END))
        ]
        self.position = records[-1].offset + 1
        return {P: records}

    async def rebalance_now(self) -> None:
        await self._rebalance(asyncio.Event())

    async def _rebalance(self, reassigning: asyncio.Event) -> None:
        await self.listener.on_partitions_revoked({P})
        self.position = self.committed.get(P, 0)
        self.fresh = not self.first_fetch_back
        reassigning.set()


class Pipeline:
    """Writes take a while; the first write of the batch from offset `fail_from` fails."""

    def __init__(
        self, fail_from: int | None, rebalance_in_decode: tuple[RebalancingConsumer, int] | None = None
    ) -> None:
        self.fail_from = fail_from
        # Decoding the chunk from that offset waits for a dead letter's send, during which the
        # group rebalances, and then fails.
        self.rebalance_in_decode = rebalance_in_decode
        self.applied: set[int] = set()

    async def decode(self, chunk: list[Any]) -> tuple[list[Any], list[Any]]:
        if self.rebalance_in_decode is not None and chunk[0].offset == self.rebalance_in_decode[1]:
            consumer, self.rebalance_in_decode = self.rebalance_in_decode[0], None
            await consumer.rebalance_now()
            raise RuntimeError("the dead-letter topic is away")
        return [(r, r.value) for r in chunk], []

    async def apply(self, good: list[Any], invalid: list[Any]) -> None:
        await asyncio.sleep(0.05)
        offsets = [value for _, value in good]
        if offsets and offsets[0] == self.fail_from:
            self.fail_from = None
            raise RuntimeError("the database went away")
        self.applied.update(offsets)

    def observe_batch(self, *_: object) -> None:
        return None


async def consume(consumer: RebalancingConsumer, pipeline: Pipeline) -> None:
    settings = types.SimpleNamespace(batch_timeout_ms=50, retry_max_backoff_seconds=0.1)
    subject = bulk.BulkConsumer(
        settings,  # type: ignore[arg-type]
        topic="t",
        group="g",
        client_id="c",
        pipeline=pipeline,  # type: ignore[arg-type]
        max_records=1_000,
        retry=None,  # type: ignore[arg-type]
    )
    consumer.listener = bulk._SettleOnRevoke(subject)
    subject._consumer = consumer  # type: ignore[assignment]
    task = asyncio.create_task(subject._run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if consumer.committed.get(P) == END:
            break
    subject._stopping.set()
    await task
    await subject._commits.flush()


async def test_a_write_failing_while_the_group_rebalances_is_read_again_not_skipped() -> None:
    # Batch 0..999 is written while the first chunk of the next is fetched; the rebalance
    # comes then, and the write fails.
    consumer, pipeline = RebalancingConsumer(rebalance_at=1_500), Pipeline(fail_from=0)
    await consume(consumer, pipeline)
    assert consumer.committed[P] == END
    assert sorted(set(range(END)) - pipeline.applied) == []


async def test_the_new_assignments_first_records_are_put_back_not_dropped() -> None:
    # As above, but the new assignment's first records (from the committed offset, 0) come
    # back at once from the fetch that waited out the rebalance.
    consumer = RebalancingConsumer(rebalance_at=1_500, first_fetch_back=True)
    pipeline = Pipeline(fail_from=0)
    await consume(consumer, pipeline)
    assert consumer.committed[P] == END
    assert sorted(set(range(END)) - pipeline.applied) == []


async def test_a_decoding_failing_across_a_rebalance_does_not_skip_the_failed_write() -> None:
    consumer = RebalancingConsumer(rebalance_at=-1)  # no rebalance in the fetch
    pipeline = Pipeline(fail_from=0, rebalance_in_decode=(consumer, 1_500))
    await consume(consumer, pipeline)
    assert consumer.committed[P] == END
    assert sorted(set(range(END)) - pipeline.applied) == []


async def test_a_rebalance_between_healthy_writes_loses_nothing() -> None:
    consumer, pipeline = RebalancingConsumer(rebalance_at=2_500), Pipeline(fail_from=None)
    await consume(consumer, pipeline)
    assert consumer.committed[P] == END
    assert sorted(set(range(END)) - pipeline.applied) == []
