"""The benchmark's own load: CloudEvents serialised before the clock starts, produced in batches."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

Record = tuple[bytes, bytes]  # (key, value)
MONTH_START = datetime(2018, 6, 1, tzinfo=UTC)


def event(type_: str, data: dict[str, object], event_id: str) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "bench",
            "type": type_,
            "time": "2018-06-01T08:00:00+08:00",
            "datacontenttype": "application/json",
            "data": data,
        }
    )


def work_scores(n: int, *, seed: int = 1, workers: int = 2_000, run: str = "") -> list[Record]:
    """`n` distinct scored work items of one month, keyed by worker (as the mill sends them)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        worker = f"w-{rng.randrange(workers):05d}"
        scored = MONTH_START + timedelta(seconds=rng.randrange(28 * 86_400))
        data = {
            "item_id": f"{run}slab-{i:09d}",
            "worker_id": worker,
            "post_id": f"post-{worker[-1]}",
            "score": round(rng.uniform(60, 100), 1),
            "scored_at": scored.isoformat(),
        }
        records.append((worker.encode(), event("work.scored", data, f"{run}ws-{i}")))
    return records


def union_commands(run: str, unions: int) -> list[Record]:
    """The federation, a district and `unions` grassroots unions members can enroll in."""

    def register(data: dict[str, object]) -> Record:
        return str(data["union_id"]).encode(), event("union.register", data, f"{run}reg-{data['union_id']}")

    records = [
        register(
            {
                "union_id": f"{run}bj",
                "name": "Federation",
                "level": "federation",
                "parent_id": None,
                "district": None,
                "kind": None,
                "founded_on": "1949-01-01",
            }
        ),
        register(
            {
                "union_id": f"{run}ft",
                "name": "Fengtai",
                "level": "district",
                "parent_id": f"{run}bj",
                "district": "Fengtai",
                "kind": None,
                "founded_on": "1950-01-01",
            }
        ),
    ]
    records += [
        register(
            {
                "union_id": f"{run}u-{u:04d}",
                "name": f"Union {u}",
                "level": "grassroots",
                "parent_id": f"{run}ft",
                "district": "Fengtai",
                "kind": "independent",
                "founded_on": "2017-01-01",
            }
        )
        for u in range(unions)
    ]
    return records


def enrolments(run: str, n: int, unions: int, *, start: int = 0) -> list[Record]:
    """`n` member.enroll commands (ids `{run}enroll-{i}`), spread over the unions."""
    return [
        (
            f"{run}m-{i:07d}".encode(),
            event(
                "member.enroll",
                {
                    "member_id": f"{run}m-{i:07d}",
                    "union_id": f"{run}u-{i % unions:04d}",
                    "joined_on": "2018-03-01",
                    "display_name": f"Bench Member {i}",
                },
                f"{run}enroll-{i}",
            ),
        )
        for i in range(start, start + n)
    ]


def producer(bootstrap: str, *, linger_ms: int = 20) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=1024 * 1024,
        acks=1,
        max_request_size=8 * 1024 * 1024,
    )


async def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> float:
    """Produces `records` as fast as the client goes; returns the seconds it took."""
    client = producer(bootstrap)
    await client.start()
    try:
        started = time.perf_counter()
        pending = []
        for key, value in records:
            pending.append(await client.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await client.stop()
