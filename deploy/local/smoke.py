"""A short smoke scenario against the running stack (`make up`): it plays outside systems,
publishes contract commands, waits for the services' events and prints what they report."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ENV = dict(
    line.split("=", 1) for line in (Path(__file__).resolve().parents[2] / ".run" / "env").read_text().split()
)
RUN = uuid.uuid4().hex[:6]  # ids of this run, so the scenario can be played again


def command(type_: str, data: dict) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "smoke", "type": type_,
                         "time": "2018-12-31T09:00:00+08:00", "correlationid": f"smoke-{RUN}", "data": data})


async def main() -> int:
    bootstrap = ENV["KAFKA_BOOTSTRAP_SERVERS"]
    consumer = AIOKafkaConsumer("membership.events", bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=f"smoke-{RUN}")
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    started = time.monotonic()
    district = f"Fengtai-{RUN}"
    waves = [
        [("union.register", {"union_id": f"bj-{RUN}", "name": "Beijing Federation", "level": "federation",
                             "founded_on": "1949-01-01"})],
        [("union.register", {"union_id": f"ft-{RUN}", "name": "Fengtai District Federation", "level": "district",
                             "parent_id": f"bj-{RUN}", "district": district, "founded_on": "1950-01-01"})],
        [("union.register", {"union_id": f"ft-{RUN}-{i}", "name": f"Grassroots union {i}", "level": "grassroots",
                             "parent_id": f"ft-{RUN}", "district": district, "kind": "independent",
                             "founded_on": "2018-02-01"}) for i in range(3)],
        [("member.enroll", {"member_id": f"m-{RUN}-{i}", "union_id": f"ft-{RUN}-{i % 3}",
                            "joined_on": "2018-03-01"}) for i in range(300)]
        + [("home.register", {"home_id": f"h-{RUN}", "union_id": f"ft-{RUN}-0", "name": "Workers' home",
                              "category": "enterprise", "opened_on": "2018-05-01"})]
        + [("station.register", {"station_id": f"s-{RUN}-{i}", "union_id": f"ft-{RUN}-1", "name": f"Station {i}",
                                 "services": ["water", "rest"], "opened_on": "2018-06-01"}) for i in range(2)],
    ]
    events: dict[str, int] = {}
    try:
        for wave in waves:
            for type_, data in wave:
                key = next(v for k, v in data.items() if k.endswith("_id"))
                await producer.send("membership.commands", command(type_, data), key=key.encode())
            await producer.flush()
            want = sum(events.values()) + len(wave)
            while sum(events.values()) < want:
                batch = await consumer.getmany(timeout_ms=10_000)
                if not batch:
                    print("smoke: no events for 10s; see .run/membership.log", file=sys.stderr)
                    return 1
                for records in batch.values():
                    for r in records:
                        event = orjson.loads(r.value)
                        if event.get("correlationid") == f"smoke-{RUN}":
                            events[event["type"]] = events.get(event["type"], 0) + 1
    finally:
        await producer.stop()
        await consumer.stop()
    elapsed = time.monotonic() - started
    async with httpx.AsyncClient(base_url=ENV["MEMBERSHIP_URL"]) as http:
        growth = (await http.get("/stats/growth", params={"year": 2018, "district": district})).json()
    expected = {"new_independent_unions": 3, "new_unions_100_plus": 3, "new_members": 300, "new_homes": 1,
                "new_stations": 2}
    print(f"\nsmoke scenario {RUN}: {sum(events.values())} events in {elapsed:.1f}s: {events}")
    print(f"growth of {district} in 2018: " + ", ".join(f"{k}={growth[k]}" for k in expected))
    ok = all(growth[k] == v for k, v in expected.items()) and "command.rejected" not in events
    print("every figure matches what was published" if ok else f"MISMATCH, expected {expected}")
    for name in ("MEMBERSHIP", "EVALUATION", "FEEDBACK"):
        print(f"  {name.lower():<11} {ENV[name + '_URL']}/metrics   {ENV[name + '_URL']}/asyncapi")
    print("the stack keeps running; stop it with: make down")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
