"""Any upgrade order works (issue 18): on the real broker, a reader of `membership.events`
(evaluation, feedback) older than membership skips and counts an event type it does not
know and applies what follows it on the partition; a reader newer than membership applies
events written without an optional field its model has. Membership itself does not run:
its events are written here as a newer or an older version of it would publish them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select

import evaluation.bootstrap
import feedback.bootstrap
from evaluation.adapters.orm import membership_view as evaluation_view
from evaluation.settings import EvaluationSettings
from feedback.adapters.orm import membership_view as feedback_view
from feedback.settings import FeedbackSettings
from tests.support import Collector, command, eventually, produce, running
from unionhub_contracts.catalogue import MEMBERSHIP_EVENTS
from unionhub_membership_view import MembershipView
from unionhub_runtime.service import Service
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

KEY = "m-1"  # every record here on one key, so on one partition, in this order


@dataclass(frozen=True)
class Reader:
    build: Callable[[KafkaSettings, str], Service]
    migrations: Path
    view: MembershipView


READERS = {
    "evaluation": Reader(
        lambda kafka, url: evaluation.bootstrap.build(
            EvaluationSettings(database_url=url, kafka=kafka, batch_timeout_ms=10)
        ),
        evaluation.bootstrap.MIGRATIONS,
        evaluation_view,
    ),
    "feedback": Reader(
        lambda kafka, url: feedback.bootstrap.build(
            FeedbackSettings(database_url=url, kafka=kafka, batch_timeout_ms=10)
        ),
        feedback.bootstrap.MIGRATIONS,
        feedback_view,
    ),
}


def event(type_: str, data: dict[str, Any], id: str) -> bytes:
    """An event as membership publishes it (structured mode, `source` = the service)."""
    return command(type_, data, id=id, source="membership", correlationid=f"c-{id}")


async def member(service: Service, view: MembershipView, member_id: str) -> tuple[str, str] | None:
    async with service.sessions() as session:
        return await view.member(session, member_id)


async def committed(kafka: KafkaSettings, service: Service) -> int:
    """Records of `membership.events` the service's group has committed, all partitions."""
    (subscription,) = [s for s in service.definition.subscriptions if s.topic == MEMBERSHIP_EVENTS.name]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(service.group_of(subscription))
    finally:
        await admin.close()
    physical = service.physical(MEMBERSHIP_EVENTS.name)
    return sum(o.offset for tp, o in offsets.items() if tp.topic == physical and o.offset >= 0)


async def nothing_dead_lettered(kafka: KafkaSettings, dlq: str, dead: Collector) -> None:
    """No record on `dlq` but a marker written after the fact: a dead letter of the records
    read before would have been acknowledged before the records behind it were applied."""
    await produce(kafka.bootstrap_servers, dlq, [b"marker"])
    await dead.wait_for(lambda: any(r.value == b"marker" for r in dead.records), what="the marker")
    assert [r.value for r in dead.records] == [b"marker"]


@pytest.mark.parametrize("reader", sorted(READERS))
async def test_an_older_reader_skips_and_counts_a_newer_event_type_and_applies_what_follows_it(
    kafka: KafkaSettings, database_url: str, reader: str
) -> None:
    spec = READERS[reader]
    service = spec.build(kafka, database_url)
    topic = service.physical(MEMBERSHIP_EVENTS.name)
    newer = [
        event("member.enrolled", {"member_id": KEY, "union_id": "u-1", "joined_on": "2018-03-01"}, "e-1"),
        # A type membership publishes from a later version on; this reader does not know it.
        event("member.renamed", {"member_id": KEY, "display_name": "Secret Name"}, "e-2"),
        # A known type with a field added (optional) in the later version: read, the field ignored.
        event(
            "member.transferred",
            {
                "member_id": KEY,
                "from_union_id": "u-1",
                "to_union_id": "u-2",
                "transferred_on": "2018-06-01",
                "reason_code": "relocation",
            },
            "e-3",
        ),
    ]
    async with (
        running(service, spec.migrations),
        Collector(kafka.bootstrap_servers, [topic + ".dlq"]) as dead,
    ):
        await produce(kafka.bootstrap_servers, topic, newer, [KEY] * len(newer))
        await eventually(
            lambda: _equals(member(service, spec.view, KEY), ("u-2", "active")), "the transfer behind the unknown type"
        )
        await eventually(lambda: _equals(committed(kafka, service), len(newer)), "offsets committed past all three")
        skipped = service.definition.registry.get_sample_value(
            "unionhub_events_skipped_total", {"topic": MEMBERSHIP_EVENTS.name, "type": "member.renamed"}
        )
        assert skipped == 1
        await nothing_dead_lettered(kafka, topic + ".dlq", dead)
        async with service.sessions() as session:
            h = spec.view.history.c
            stays = (await session.execute(select(h.union_id, h.to_on).where(h.member_id == KEY).order_by(h.id))).all()
        assert [(union, str(to_on) if to_on else None) for union, to_on in stays] == [
            ("u-1", "2018-06-01"),
            ("u-2", None),
        ]


@pytest.mark.parametrize("reader", sorted(READERS))
async def test_a_newer_reader_applies_an_older_producers_events_without_their_optional_fields(
    kafka: KafkaSettings, database_url: str, reader: str
) -> None:
    spec = READERS[reader]
    service = spec.build(kafka, database_url)
    topic = service.physical(MEMBERSHIP_EVENTS.name)
    older = [
        # `parent_id`, `district` and `kind` are optional in the model: absent, not null.
        event(
            "union.registered",
            {"union_id": "bj", "name": "Beijing", "level": "federation", "founded_on": "1949-10-01"},
            "o-1",
        ),
        event("member.enrolled", {"member_id": KEY, "union_id": "bj", "joined_on": "2018-03-01"}, "o-2"),
        # `reason` is optional in the model: absent.
        event("member.left", {"member_id": KEY, "union_id": "bj", "left_on": "2018-09-01"}, "o-3"),
    ]
    async with (
        running(service, spec.migrations),
        Collector(kafka.bootstrap_servers, [topic + ".dlq"]) as dead,
    ):
        await produce(kafka.bootstrap_servers, topic, older, [KEY] * len(older))
        await eventually(lambda: _equals(member(service, spec.view, KEY), ("bj", "left")), "the member's leaving")
        async with service.sessions() as session:
            u = spec.view.unions.c
            unions = (await session.execute(select(u.union_id, u.level, u.district))).all()
        assert [tuple(row) for row in unions] == [("bj", "federation", None)]
        assert service.definition.registry.get_sample_value(
            "unionhub_messages_processed_total", {"topic": MEMBERSHIP_EVENTS.name, "outcome": "applied"}
        ) == len(older)
        await nothing_dead_lettered(kafka, topic + ".dlq", dead)


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
