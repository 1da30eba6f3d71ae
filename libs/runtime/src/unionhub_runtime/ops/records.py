"""Reading a stretch of a topic with a consumer of no group: it never joins, never commits,
so inspecting a service's topics cannot disturb the service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ..kafka import client_kwargs
from ..settings import KafkaSettings

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class TopicMissing(LookupError):
    pass


@asynccontextmanager
async def reader(settings: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    # An offset deleted by retention meanwhile moves to the log start, never to its end.
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **client_kwargs(settings))
    await consumer.start()
    # aiokafka's group-less coordinator starts a task that, cancelled before it first runs,
    # makes `stop()` raise CancelledError: let it run once, whatever the caller does.
    await asyncio.sleep(0)
    try:
        yield consumer
    finally:
        await consumer.stop()


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # Fresh metadata: the consumer's own cache knows only topics it was assigned or asked for
    # (`topics()` fetches all but does not keep them).
    numbers = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic)
    if not numbers:
        raise TopicMissing(f"topic {topic!r} does not exist on this cluster (check KAFKA_TOPIC_PREFIX)")
    return [TopicPartition(topic, p) for p in sorted(numbers)]


async def starts_at(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition], since: datetime | None
) -> dict[TopicPartition, int]:
    """Per partition, the first offset whose record is not older than `since` (or the log start)."""
    tps = list(tps)
    firsts = await consumer.beginning_offsets(tps)
    if since is None:
        return dict(firsts)
    ends = await consumer.end_offsets(tps)
    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    return {tp: int(found[tp].offset) if found[tp] is not None else int(ends[tp]) for tp in tps}


async def read(
    consumer: AIOKafkaConsumer, ranges: dict[TopicPartition, tuple[int, int]], stall_seconds: float = 30
) -> AsyncIterator[Record]:
    """The records of each partition from `start` up to `end` (excluded), in offset order per
    partition. Offsets a compaction or a transaction marker left empty are skipped; a broker
    that gives nothing for `stall_seconds` is an error, not an endless wait."""
    wanted = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
    if not wanted:
        return
    consumer.assign(list(wanted))
    for tp, (start, _) in wanted.items():
        consumer.seek(tp, start)
    pending = set(wanted)
    progress = time.monotonic()
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=2000)
        if batches:
            progress = time.monotonic()
        elif time.monotonic() - progress > stall_seconds:
            raise TimeoutError(f"no records from {sorted(map(str, pending))} for {stall_seconds:.0f} s")
        for tp, records in batches.items():
            for record in records:
                if record.offset < wanted[tp][1]:
                    yield record
        for tp in list(pending):
            if await consumer.position(tp) >= wanted[tp][1]:
                pending.discard(tp)
