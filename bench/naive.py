"""The naive baseline: what a user writes first with FastStream. One message at a time, each
validated against the contract and stored in a database transaction of its own (dedupe row,
state row, outbox row for commands), offsets committed after each message.

    python -m bench.naive work|enroll --bootstrap B --topic T --contract-topic C --count N --database-url URL
prints {"seconds": …, "messages": n} once N messages were handled or --seconds passed since
the first (the baseline is slow: it is measured for a while, not to the end).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import orjson
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from unionhub_contracts import decode
from unionhub_runtime.database import create_engine, session_factory

metadata = MetaData()
seen = Table("naive_seen", metadata, Column("id", String(256), primary_key=True))
state = Table(
    "naive_state",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("total", Integer, nullable=False),
)
outbox = Table(
    "naive_outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True)),
)


async def main(args: argparse.Namespace) -> None:
    engine = create_engine(args.database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = session_factory(engine)
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    broker = KafkaBroker(args.bootstrap, logger=None)
    done = asyncio.Event()
    handled = {"n": 0, "first": 0.0}

    @broker.subscriber(
        args.topic,
        group_id=f"naive-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        decoder=lambda message: message.body,
    )
    async def handle(body: bytes) -> None:
        if not handled["first"]:
            handled["first"] = time.perf_counter()
        event = decode(args.contract_topic, body)
        async with sessions() as session, session.begin():
            fresh = await session.execute(insert(seen).values(id=event.id).on_conflict_do_nothing())
            if fresh.rowcount:
                key = event.data.worker_id if args.mode == "work" else event.data.member_id
                score = int(event.data.score * 10) if args.mode == "work" else 1
                upsert = insert(state).values(key=key, count=1, total=score)
                await session.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["key"], set_={"count": state.c.count + 1, "total": state.c.total + score}
                    )
                )
                if args.mode == "enroll":
                    await session.execute(
                        outbox.insert().values(
                            id=str(uuid.uuid4()), value=orjson.dumps({"member_id": key}), created_at=datetime.now(UTC)
                        )
                    )
        handled["n"] += 1
        if handled["n"] >= args.count:
            done.set()

    await broker.start()
    try:
        while not done.is_set():
            if handled["first"] and time.perf_counter() - handled["first"] >= args.seconds:
                break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - handled["first"]
    finally:
        await broker.stop()
        await engine.dispose()
    print(orjson.dumps({"seconds": seconds, "messages": handled["n"]}).decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["work", "enroll"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="as named on the cluster")
    parser.add_argument("--contract-topic", required=True, help="the catalogue's name, which picks the decoder")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seconds", type=float, default=20.0, help="stop measuring after this long")
    asyncio.run(main(parser.parse_args()))
