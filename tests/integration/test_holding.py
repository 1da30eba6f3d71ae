"""A live feed sent without waiting for answers ends as if sent one answer at a time."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

import membership.bootstrap
from membership.adapters import orm
from membership.settings import MembershipSettings
from tests.support import running
from unionhub_contracts.client import CommandClient, Sent
from unionhub_runtime.settings import HoldSettings, KafkaSettings

pytestmark = pytest.mark.integration


def build(kafka: KafkaSettings, database_url: str, **hold: float):
    return membership.bootstrap.build(
        MembershipSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10, hold=HoldSettings(**hold))
    )


def hierarchy(n: int) -> list[tuple[str, dict[str, object]]]:
    """A federation, a district, three grassroots unions and three members in each, in the
    order an HR system produces them."""
    fed, district = f"fed-{n}", f"d-{n}"
    feed: list[tuple[str, dict[str, object]]] = [
        ("union.register", {"union_id": fed, "name": "Federation", "level": "federation", "founded_on": "1949-01-01"}),
        (
            "union.register",
            {
                "union_id": district,
                "name": "District",
                "level": "district",
                "parent_id": fed,
                "district": district,
                "founded_on": "1950-01-01",
            },
        ),
    ]
    for g in range(3):
        union = f"g-{n}-{g}"
        feed.append(
            (
                "union.register",
                {
                    "union_id": union,
                    "name": "Shop",
                    "level": "grassroots",
                    "parent_id": district,
                    "district": district,
                    "kind": "independent",
                    "founded_on": "2018-02-01",
                },
            )
        )
        feed += [
            ("member.enroll", {"member_id": f"m-{n}-{g}-{k}", "union_id": union, "joined_on": "2018-03-01"})
            for k in range(3)
        ]
    return feed


async def test_a_live_hr_feed_is_applied_whole_whatever_the_partitions(kafka: KafkaSettings, database_url: str) -> None:
    feed = [command for n in range(20) for command in hierarchy(n)]
    last = feed[-1][1]["member_id"]
    async with running(build(kafka, database_url), membership.bootstrap.MIGRATIONS):
        pass  # the topics
    async with CommandClient(kafka.bootstrap_servers, source="hr-system/live", topic_prefix=kafka.topic_prefix) as hr:
        # Sent while no instance reads, the feed is all there when one starts: its batches take
        # the six partitions in the order they come, not the feed's (a service that keeps up
        # with a feed sent one command at a time may apply it in order, holding nothing).
        sent: list[Sent] = [await hr.send(command_type, data) for command_type, data in feed]  # acked, not answered
        # The member leaves right after joining: never before the enrolment, even if that is held.
        sent.append(await hr.send("member.leave", {"member_id": last, "left_on": "2018-04-01", "reason": "moved"}))
        service = build(kafka, database_url)
        async with running(service, membership.bootstrap.MIGRATIONS):
            await hr.wait_all(sent, timeout=120)
        finals = Counter(hr.answers[s.id].type for s in sent)
        held = sum(1 for s in sent if hr.answers[s.id].held)
    assert finals == {"union.registered": 100, "member.enrolled": 180, "member.left": 1}, finals
    assert held > 0, "the feed should have overtaken itself somewhere on 6 partitions"
    async with service.sessions() as session:
        unions = await session.scalar(select(func.count()).select_from(orm.unions))
        left = await session.scalar(select(orm.members.c.status).where(orm.members.c.member_id == last))
        still_held = await session.scalar(select(func.count()).select_from(orm.runtime_tables.held))
    assert (unions, left, still_held) == (100, "left", 0)


async def test_a_hold_that_ends_rejects_as_in_order_and_releases_what_queued(
    kafka: KafkaSettings, database_url: str
) -> None:
    service = build(kafka, database_url, hold_seconds=1.0, hold_check_seconds=0.2)
    async with (
        running(service, membership.bootstrap.MIGRATIONS),
        CommandClient(kafka.bootstrap_servers, source="hr-system/late", topic_prefix=kafka.topic_prefix) as hr,
    ):
        orphan = await hr.send("member.enroll", {"member_id": "m-x", "union_id": "never", "joined_on": "2018-03-01"})
        leave = await hr.send("member.leave", {"member_id": "m-x", "left_on": "2018-04-01", "reason": "moved"})
        await hr.wait_all([orphan, leave], timeout=30)
        answers = [hr.answers[orphan.id], hr.answers[leave.id]]
    assert [a.held["waiting_for"] for a in answers] == ["union:never", "queue:member_id:m-x"]  # type: ignore[index]
    assert [(a.type, a.rejection["code"]) for a in answers] == [  # type: ignore[index]
        ("command.rejected", "not_found"),
        ("command.rejected", "not_found"),
    ]
    assert [sum(e["type"] == "command.held" for e in a.events) for a in answers] == [1, 1]  # said once
    # Settled by the hold timer: counted once each, after its transaction committed.
    registry = service.definition.registry

    def total(name: str, **labels: str) -> float:
        return sum(
            sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    # The enrolment's hold ended; the leave queued behind it is decided as its rejection
    # commits, an expiry too only if its own hold (begun a moment later) had ended by then.
    assert 1 <= total("unionhub_hold_expired_total", code="not_found") <= 2
    assert total("unionhub_hold_duration_seconds_count") == 2
    for command_type in ("member.enroll", "member.leave"):
        assert total("unionhub_commands_total", type=command_type, outcome="held") == 1
        assert total("unionhub_commands_total", type=command_type, outcome="rejected", code="not_found") == 1
