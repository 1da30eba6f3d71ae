"""What FastStream catches around a handler is logged, structured, by the service's own
loggers (issue 14, finding 13: it was built with `logger=None` and said nothing)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from faststream import AckPolicy

from tests.support import produce
from unionhub_contracts import TOPICS
from unionhub_runtime.kafka import create_broker, ensure_topics
from unionhub_runtime.logs import JsonFormatter
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_an_error_faststream_catches_around_a_handler_is_logged(
    kafka: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_topics(kafka, TOPICS)
    topic = kafka.topic_prefix + "membership.commands"
    broker = create_broker(kafka, client_id="logs-test")
    failed = asyncio.Event()

    @broker.subscriber(
        topic,
        group_id=kafka.topic_prefix + "logs",
        batch=True,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def handler(_: object) -> None:
        failed.set()
        raise RuntimeError("the commit of batch 7 failed")

    caplog.set_level(logging.INFO)
    async with broker:
        await broker.start()
        await produce(kafka.bootstrap_servers, topic, [b'{"private": "Li Wei"}'])
        await asyncio.wait_for(failed.wait(), 30)
        await asyncio.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "batch 7" in r.getMessage()]
    assert errors, "the handler's error went unlogged"
    line = JsonFormatter("test").format(errors[0])
    assert "Li Wei" not in line  # the message's content is not logged
    assert not [
        r
        for r in caplog.records
        if r.levelno == logging.INFO and r.name.startswith("unionhub") and "Received" in r.getMessage()
    ], "one access line per batch at INFO is too much at 50,000/s"
