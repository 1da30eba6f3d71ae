"""Scenario 6 of the fault-injection suite: poison and hostile values on the commands topic,
between good commands. Each lands in the DLQ with its headers, the partition keeps flowing,
and the service's memory stays bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.reliability.harness import Fleet, Ledger, assert_exactly_once, events_on_topic, settle
from tests.support import command

pytestmark = pytest.mark.reliability

DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE: dict[str, bytes] = {
    "not json": b"{this is not json",
    "wrong types": command("member.enroll", {"member_id": 7, "union_id": ["u0"], "joined_on": "yesterday"}),
    "2 MiB value": command(
        "member.enroll",
        {"member_id": "big", "union_id": "u0", "joined_on": "2018-01-02", "display_name": "x" * (2 * 1024 * 1024)},
    ),
    "unknown type": command("member.teleport", {"member_id": "m-x"}),
    "deeply nested": DEEP,
    "nested in data": b'{"specversion":"1.0","id":"nest","source":"t","type":"member.enroll","data":' + DEEP + b"}",
    "huge string": command("member.enroll", {"member_id": "s" * 900_000, "union_id": "u0", "joined_on": "2018-01-02"}),
    "latin-1 bytes": command("union.register", {"union_id": "x"}).replace(b'"x"', b'"\xe9\xe8"'),
    "utf-16": orjson.dumps({"specversion": "1.0", "id": "u16", "source": "t", "type": "member.leave", "data": {}})
    .decode()
    .encode("utf-16"),
    "empty": b"",
    "json null": b"null",
}


def rss_peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


async def test_hostile_values_go_to_the_dlq_with_headers_and_the_partition_keeps_flowing(fleet: Fleet) -> None:
    ledger = Ledger(300)
    instance = fleet.start()
    topic = fleet.prefix + "membership.commands"
    for record in ledger.unions():
        await ledger.send(fleet.bootstrap, topic, [record])
        await asyncio.sleep(0.3)
    steps = ledger.steps()
    producer = AIOKafkaProducer(bootstrap_servers=fleet.bootstrap, max_request_size=4 * 1024 * 1024, acks="all")
    await producer.start()
    try:
        # Every hostile value shares a partition with good commands (same key) and sits between them.
        for n, value in enumerate(HOSTILE.values()):
            await ledger.send(fleet.bootstrap, topic, steps[n * 20 : (n + 1) * 20])
            await producer.send_and_wait(topic, value, key=b"m-000000")
        await ledger.send(fleet.bootstrap, topic, steps[len(HOSTILE) * 20 :])
    finally:
        await producer.stop()
    await settle(fleet.database_url, ledger)
    await assert_exactly_once(fleet.database_url, ledger)

    dead = await events_on_topic_raw(fleet, topic + ".dlq")
    assert len(dead) == len(HOSTILE)
    by_value = {value: headers for value, headers in dead}
    for name, value in HOSTILE.items():
        headers = by_value.get(value)
        assert headers is not None, f"{name} is not in the DLQ unchanged"
        assert headers["original.topic"] == topic.encode() and headers["error.code"], name
    codes = {headers["error.code"].decode() for _, headers in dead}
    assert codes <= {"not_json", "not_cloudevent", "unknown_type", "invalid_data", "too_large"}
    assert "too_large" in codes and "unknown_type" in codes and "not_json" in codes
    rejected = [
        e
        for e in await events_on_topic(fleet.bootstrap, fleet.prefix + "membership.events")
        if e["type"] == "command.rejected"
    ]
    assert all(e["data"]["code"] == "invalid" for e in rejected)  # those with a readable id and type
    peak = rss_peak_mb(instance.process.pid)
    print(
        f"\nscenario 6: {len(HOSTILE)} hostile values among {len(ledger.acked)} commands; DLQ codes {sorted(codes)}; "
        f"peak RSS {peak:.0f} MB"
    )
    assert peak < 400, f"memory not bounded: peak RSS {peak:.0f} MB"


async def events_on_topic_raw(fleet: Fleet, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=fleet.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        found = []
        while batch := await consumer.getmany(timeout_ms=3000):
            for records in batch.values():
                found.extend((r.value or b"", dict(r.headers or ())) for r in records)
        return found
    finally:
        await consumer.stop()
