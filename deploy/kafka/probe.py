"""Waits until a Kafka cluster really accepts a produce and a consume.

Usage: probe.py BOOTSTRAP [--timeout SECONDS]. Exit 0 when a message written to the
`__unionhub_probe` topic is read back, 1 on timeout.
"""

import argparse
import asyncio
import logging
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from unionhub_runtime.kafka import client_kwargs
from unionhub_runtime.settings import KafkaSettings

TOPIC = "__unionhub_probe"


def connection(bootstrap: str) -> dict[str, Any]:
    """Bootstrap plus the security settings of the environment (`KAFKA_SECURITY_PROTOCOL`, …)."""
    return client_kwargs(KafkaSettings(bootstrap_servers=bootstrap))


async def round_trip(bootstrap: str, brokers: int) -> None:
    admin = AIOKafkaAdminClient(**connection(bootstrap))
    await admin.start()
    try:
        # A cluster is ready once every broker has registered: the probe's topic is on all.
        response = await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=brokers)])
        for _, code, message in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"creating the probe topic failed: {code} {message}")
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(acks="all", **connection(bootstrap))
    await producer.start()
    try:
        meta = await producer.send_and_wait(TOPIC, token)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection(bootstrap))
    await consumer.start()
    try:
        tp = TopicPartition(TOPIC, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(), 10)
        if record.value != token:
            raise RuntimeError("probe read back a different message")
    finally:
        await consumer.stop()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--brokers", type=int, default=1, help="how many brokers must have registered")
    args = parser.parse_args()
    # Connection refusals are expected while the broker starts; report only the outcome.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + args.timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(round_trip(args.bootstrap, args.brokers), 20)
            return 0
        except (TimeoutError, KafkaError, OSError, RuntimeError) as exc:
            last_error = exc
            await asyncio.sleep(0.5)
    print(f"kafka probe: {args.bootstrap} not ready: {last_error!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
