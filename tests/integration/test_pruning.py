"""The inbox and the work-item dedupe set keep what a redelivery can still bring, and lose the
rest (issue 14, finding 7): with a retention of a few seconds, rows older than it are pruned
while a redelivery inside it is still skipped."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import evaluation.bootstrap
import membership.bootstrap
from evaluation.adapters import orm as evaluation_orm
from evaluation.settings import EvaluationSettings
from membership.settings import MembershipSettings
from tests.support import Collector, command, eventually, produce, running
from unionhub_runtime.service import Service
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration
SHORT = {"dedupe_keep_seconds": 3.0, "prune_every_seconds": 0.5, "batch_timeout_ms": 10}
FED = {
    "union_id": "bj",
    "name": "Beijing Federation",
    "level": "federation",
    "parent_id": None,
    "district": None,
    "kind": None,
    "founded_on": "1950-01-01",
}


async def scalar(service: Service, query: object) -> int:
    async with service.sessions() as session:
        assert isinstance(session, AsyncSession)
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def test_inbox_rows_past_the_retention_are_pruned_and_a_redelivery_inside_it_is_skipped(
    kafka: KafkaSettings, database_url: str
) -> None:
    service = membership.bootstrap.build(MembershipSettings(database_url=database_url, kafka=kafka, **SHORT))
    topic, events = kafka.topic_prefix + "membership.commands", kafka.topic_prefix + "membership.events"
    inbox = select(func.count()).select_from(service.definition.tables.inbox)
    async with Collector(kafka.bootstrap_servers, [events]) as got, running(service, membership.bootstrap.MIGRATIONS):
        await produce(kafka.bootstrap_servers, topic, [command("union.register", FED, id="first")], ["bj"])
        await got.wait_for(lambda: len(got.events(events, "union.registered")) == 1, what="applied")
        await eventually(lambda: _is(service, inbox, 0), "the inbox pruned")
        again = command("union.register", {**FED, "union_id": "sh", "name": "Shanghai Federation"}, id="again")
        await produce(kafka.bootstrap_servers, topic, [again], ["sh"])
        await got.wait_for(lambda: len(got.events(events, "union.registered")) == 2, what="applied")
        await produce(kafka.bootstrap_servers, topic, [again], ["sh"])  # inside the retention: skipped
        await asyncio.sleep(1.0)
        assert await scalar(service, inbox) == 1
    # The same data again would answer again: a second answer means it was applied again.
    assert len(got.events(events, "union.registered")) == 2
    assert (service.metrics.registry.get_sample_value("unionhub_pruned_rows_total", {"table": "inbox"}) or 0) >= 1


async def _is(service: Service, query: object, expected: int) -> bool:
    return await scalar(service, query) == expected


async def test_work_items_past_the_retention_are_pruned_and_a_redelivery_inside_it_is_counted_once(
    kafka: KafkaSettings, database_url: str
) -> None:
    service = evaluation.bootstrap.build(EvaluationSettings(database_url=database_url, kafka=kafka, **SHORT))
    topic = kafka.topic_prefix + "evaluation.work-scores"
    items = select(func.count()).select_from(evaluation_orm.work_items)
    counted = select(func.sum(evaluation_orm.worker_months.c.item_count))

    def scored(item_id: str) -> bytes:
        return command(
            "work.scored",
            {
                "item_id": item_id,
                "worker_id": "w-1",
                "post_id": "rolling-1",
                "score": 97.5,
                "scored_at": "2018-11-30T23:59:00+08:00",
            },
            id=f"e-{item_id}",
        )

    async with running(service, evaluation.bootstrap.MIGRATIONS):
        await produce(kafka.bootstrap_servers, topic, [scored("slab-1")], ["w-1"])
        await eventually(lambda: _is(service, counted, 1), "the item counted")
        await eventually(lambda: _is(service, items, 0), "the dedupe row pruned")
        await produce(kafka.bootstrap_servers, topic, [scored("slab-2"), scored("slab-2")], ["w-1", "w-1"])
        await eventually(lambda: _is(service, counted, 2), "the second item counted")
        await asyncio.sleep(1.0)
        assert await scalar(service, counted) == 2  # its redelivery inside the retention was skipped
        assert await scalar(service, items) == 1
