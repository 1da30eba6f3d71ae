"""Migrations gate the rollout (issue 18.2): an instance is not ready until its database is
at the head of its migrations, and it reads no command before then: a command sent meanwhile
waits in Kafka for the migration instead of failing on the old schema (a column not yet
relaxed fails as a constraint violation, no transient error) and going to the DLQ."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

import membership.bootstrap
from membership.settings import MembershipSettings
from tests.support import Collector, command, eventually, produce
from unionhub_runtime.database import create_engine
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.service import Service
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

MIGRATIONS = membership.bootstrap.MIGRATIONS
UNIONS = [("bj", "federation", None, None), ("ft", "district", "bj", "Fengtai"), ("u0", "grassroots", "ft", "Fengtai")]


def build(kafka: KafkaSettings, database_url: str) -> Service:
    service = membership.bootstrap.build(
        MembershipSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10, retry_max_backoff_seconds=0.5)
    )
    service.requires_schema(MIGRATIONS)  # as the CLI does
    return service


def commands() -> list[bytes]:
    registered = [
        command(
            "union.register",
            {
                "union_id": uid,
                "name": uid,
                "level": level,
                "parent_id": parent,
                "district": district,
                "kind": "independent" if level == "grassroots" else None,
                "founded_on": "2000-01-01",
            },
            id=f"reg-{uid}",
        )
        for uid, level, parent, district in UNIONS
    ]
    enrolled = command("member.enroll", {"member_id": "m-1", "union_id": "u0", "joined_on": "2018-01-02"}, id="enr-1")
    return [*registered, enrolled]


def retries(service: Service) -> float:
    samples = service.metrics.retries.collect()[0].samples
    return sum(s.value for s in samples if s.name.endswith("_total"))


@pytest.mark.parametrize("migrated_to", [None, "0005"], ids=["nothing-migrated", "a-revision-behind"])
async def test_a_command_sent_before_the_migration_waits_for_it_and_is_never_dead_lettered(
    kafka: KafkaSettings, database_url: str, migrated_to: str | None
) -> None:
    if migrated_to:  # 0006 adds members.left_reason: an enrolment reads that column
        await upgrade_async(MIGRATIONS, database_url, migrated_to)
    prefix = kafka.topic_prefix
    commands_topic, events, dlq = (
        f"{prefix}membership.commands",
        f"{prefix}membership.events",
        f"{prefix}membership.commands.dlq",
    )
    service = build(kafka, database_url)
    async with Collector(kafka.bootstrap_servers, [events, dlq]) as collected:
        service.start_in_background()  # as the CLI does: HTTP answers meanwhile
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=service.asgi()), base_url="http://m"
            ) as http:
                answer = await http.get("/readyz")
            assert answer.status_code == 503 and answer.json()["checks"]["schema"] is False
            await produce(kafka.bootstrap_servers, commands_topic, commands(), keys=["m-1"] * 4)
            await asyncio.sleep(3)  # time enough to read, fail and dead-letter them, were they read
            assert [r for r in collected.records if r.topic == dlq] == [], "dead-lettered before the migration"
            assert collected.events(events) == []
            assert retries(service) == 0, "read before the migration"
            assert not (await service.ready())["schema"]

            await upgrade_async(MIGRATIONS, database_url)  # the Job, or another instance, migrates

            await collected.wait_for(lambda: collected.events(events, "member.enrolled"), what="the enrolment")
            await eventually(lambda: _ready(service), "ready once migrated")
        finally:
            await service.stop()
    assert [r for r in collected.records if r.topic == dlq] == []
    assert [e["type"] for e in collected.events(events)].count("union.registered") == 3
    assert len(collected.events(events, "member.enrolled")) == 1
    assert collected.events(events, "command.rejected") == []


async def _ready(service: Service) -> bool:
    return all((await service.ready()).values())


async def test_readiness_reads_the_schema_until_it_is_at_head_then_keeps_the_answer(database_url: str) -> None:
    await upgrade_async(MIGRATIONS, database_url, "0005")
    service = build(KafkaSettings(), database_url)  # not started: the schema check needs no Kafka
    engine = create_engine(database_url)
    try:
        assert not await service.schema.at_head(), "one revision behind"
        await upgrade_async(MIGRATIONS, database_url)
        assert await service.schema.at_head()
        async with engine.begin() as connection:  # gone back (never done): the answer was kept
            await connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
        assert await service.schema.at_head()
    finally:
        await engine.dispose()
        await service.engine.dispose()


async def test_a_schema_a_newer_version_migrated_keeps_an_older_instance_ready(database_url: str) -> None:
    """Rolling forward, the migration runs before the old pods are gone; rolling back, the
    schema stays where the newer version took it. Migrations only add: the old code works."""
    await upgrade_async(MIGRATIONS, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))  # unknown here
    finally:
        await engine.dispose()
    service = build(KafkaSettings(), database_url)
    try:
        assert await service.schema.at_head()
    finally:
        await service.engine.dispose()
    # The older version's migration (its Job applied again, `serve --migrate`) has nothing to
    # do there: it says so and succeeds, instead of failing on a revision it cannot know.
    await upgrade_async(MIGRATIONS, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT version_num FROM alembic_version")) == "0099"
    finally:
        await engine.dispose()


async def test_an_empty_database_or_one_without_the_runtime_history_is_not_at_head(database_url: str) -> None:
    service = build(KafkaSettings(), database_url)
    try:
        assert not await service.schema.at_head()
        await upgrade_async(MIGRATIONS, database_url, "0006")  # the service's head, not the runtime's
        assert not await service.schema.at_head()
        await upgrade_async(MIGRATIONS, database_url)
        assert await service.schema.at_head()
    finally:
        await service.engine.dispose()
