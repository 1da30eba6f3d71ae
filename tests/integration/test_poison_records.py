"""Records that once looped forever on PostgreSQL (issue 14, finding 1): each ends in exactly
one place, once, and the good record behind it on the same partition is applied."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

import membership.bootstrap
from tests.integration.test_runtime_guarantees import FED, Topics, build
from tests.support import Collector, command, produce, running
from unionhub_contracts import TOPICS
from unionhub_runtime.kafka import ensure_topics
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_an_undecodable_command_with_an_overlong_id_is_dead_lettered_once(
    kafka: KafkaSettings, database_url: str
) -> None:
    topics = Topics(kafka)
    async with (
        Collector(topics.bootstrap, [topics.events, topics.dlq]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS),
    ):
        poison = command(
            "member.enroll", {"member_id": "m-1", "union_id": "ft-1", "joined_on": "someday"}, id="x" * 300
        )  # longer than any id the envelope allows
        await topics.send(poison, command("union.register", FED, id="good-one"), key="same-partition")
        await collected.wait_for(lambda: collected.events(topics.events, "union.registered"), what="good applied")
        await asyncio.sleep(1.0)  # a loop would dead-letter it again and again meanwhile
        letters = [r for r in collected.records if r.topic == topics.dlq]
        assert [(r.value, r.headers["error.code"]) for r in letters] == [(poison, b"not_cloudevent")]
        # Its id is not one the envelope allows, so it has no answer to key by.
        assert collected.events(topics.events, "command.rejected") == []


@pytest.mark.parametrize("traceparent", [b"00-" + b"a" * 300, b"not a trace context", b"\xff\xfe"])
async def test_a_command_with_a_malformed_traceparent_is_applied_with_a_trace_of_its_own(
    kafka: KafkaSettings, database_url: str, traceparent: bytes
) -> None:
    topics = Topics(kafka)
    async with (
        Collector(topics.bootstrap, [topics.events]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS),
    ):
        producer_headers = [("content-type", b"application/cloudevents+json"), ("traceparent", traceparent)]
        await produce(
            topics.bootstrap, topics.commands, [command("union.register", FED, id="traced")], ["bj"], producer_headers
        )
        await collected.wait_for(lambda: collected.events(topics.events, "union.registered"), what="applied")
        event = next(r for r in collected.records if r.topic == topics.events)
        sent_on = event.headers.get("traceparent")
        assert sent_on is None or (len(sent_on) == 55 and sent_on != traceparent)  # W3C: ignored, not copied


async def test_a_record_whose_dead_letter_copy_is_over_the_size_limit_is_dead_lettered_once_cut(
    kafka: KafkaSettings, database_url: str
) -> None:
    topics = Topics(kafka)
    # The topic takes it (the broker here allows 4 MiB); this service's producers send at most
    # 1 MiB (KAFKA_MAX_REQUEST_BYTES): the copy cannot go unchanged.
    huge = b"x" * (2 * 1024 * 1024)
    limited = kafka.model_copy(update={"max_request_bytes": 1_048_576})
    async with (
        Collector(topics.bootstrap, [topics.events, topics.dlq]) as collected,
        running(build(limited, database_url), membership.bootstrap.MIGRATIONS),
    ):
        producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap, max_request_size=5 * 1024 * 1024)
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.commands, huge, key=b"same-partition", headers=[("bulky", b"h" * 900_000)]
            )
        finally:
            await producer.stop()
        await topics.send(command("union.register", FED, id="good-one"), key="same-partition")
        await collected.wait_for(lambda: collected.events(topics.events, "union.registered"), what="good applied")
        await asyncio.sleep(1.0)  # a loop would dead-letter it again and again meanwhile
        (letter,) = [r for r in collected.records if r.topic == topics.dlq]
        assert letter.headers["error.code"] == b"too_large"
        assert letter.headers["original.size"] == str(len(huge)).encode()
        assert len(letter.value) < len(huge) and huge.startswith(letter.value)  # a prefix, to inspect
        assert letter.headers["original.offset"] == b"0" and "bulky" not in letter.headers  # the record is still there


async def test_a_record_just_under_the_brokers_limit_reaches_the_dead_letter_topic_unchanged(
    kafka: KafkaSettings, database_url: str
) -> None:
    topics = Topics(kafka)
    # As large as the broker takes (4 MiB here): the copy, with the headers saying why, is
    # larger, and its topic takes it (created with max.message.bytes = the producers' limit).
    huge = b"x" * (4 * 1024 * 1024 - 200)
    async with (
        Collector(topics.bootstrap, [topics.events, topics.dlq]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS),
    ):
        producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap, max_request_size=5 * 1024 * 1024)
        await producer.start()
        try:
            await producer.send_and_wait(topics.commands, huge, key=b"same-partition")
        finally:
            await producer.stop()
        await topics.send(command("union.register", FED, id="good-one"), key="same-partition")
        await collected.wait_for(lambda: collected.events(topics.events, "union.registered"), what="good applied")
        await collected.wait_for(lambda: [r for r in collected.records if r.topic == topics.dlq], what="the copy")
        (letter,) = [r for r in collected.records if r.topic == topics.dlq]
        assert letter.value == huge and letter.headers["error.code"] == b"too_large"


async def test_a_record_waits_for_its_missing_dead_letter_topic_and_lands_there_once(
    kafka: KafkaSettings, database_url: str
) -> None:
    topics = Topics(kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topics.dlq])
    finally:
        await admin.close()
    service = build(kafka, database_url)
    async with (
        Collector(topics.bootstrap, [topics.events]) as collected,
        running(service, membership.bootstrap.MIGRATIONS),
    ):
        await topics.send(b"not json", command("union.register", FED, id="good-one"), key="same-partition")
        await asyncio.sleep(8)
        assert not (await service.ready())["consumers"], "/readyz stays green while a record has nowhere to go"
        assert collected.events(topics.events, "union.registered") == [], "it committed past the record"
        await ensure_topics(kafka, TOPICS)  # the operator restores the DLQ
        await collected.wait_for(
            lambda: collected.events(topics.events, "union.registered"), what="good applied", timeout=60
        )
        assert (await service.ready())["consumers"]
    async with Collector(topics.bootstrap, [topics.dlq]) as dead:
        await dead.wait_for(lambda: dead.records, what="the dead letter")
        await asyncio.sleep(1.0)
        assert [(r.value, r.headers["error.code"]) for r in dead.records] == [(b"not json", b"not_json")]
