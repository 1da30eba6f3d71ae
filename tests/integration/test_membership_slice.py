"""The thin end-to-end slice over the real broker: membership applies commands, publishes
events through its outbox, and evaluation and feedback fold them into their member views."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import evaluation.bootstrap
import feedback.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from tests.support import Collector, bearer, command, produce, running
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

FEDERATION = {
    "union_id": "bj",
    "name": "Beijing Federation of Trade Unions",
    "level": "federation",
    "parent_id": None,
    "district": None,
    "kind": None,
    "founded_on": "1949-01-01",
}
FENGTAI = {
    "union_id": "ft",
    "name": "Fengtai District Federation",
    "level": "district",
    "parent_id": "bj",
    "district": "Fengtai",
    "kind": None,
    "founded_on": "1950-01-01",
}
GRASSROOTS = {
    "union_id": "ft-001",
    "name": "Fengtai Steel Union",
    "level": "grassroots",
    "parent_id": "ft",
    "district": "Fengtai",
    "kind": "independent",
    "founded_on": "2018-02-01",
}


def membership_settings(kafka: KafkaSettings, database_url: str) -> MembershipSettings:
    return MembershipSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10)


def client(service: object) -> httpx.AsyncClient:
    app = service.asgi()  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=bearer())


async def test_registered_unions_and_enrolled_members_reach_every_service(
    kafka: KafkaSettings, database_url: str, tmp_path
) -> None:
    commands_topic = kafka.topic_prefix + "membership.commands"
    events_topic = kafka.topic_prefix + "membership.events"
    evaluation_service = evaluation.bootstrap.build(
        EvaluationSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}", kafka=kafka, batch_timeout_ms=10)
    )
    feedback_service = feedback.bootstrap.build(
        FeedbackSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'fb.db'}", kafka=kafka, batch_timeout_ms=10)
    )
    async with (
        Collector(kafka.bootstrap_servers, [events_topic]) as collected,
        running(
            membership.bootstrap.build(membership_settings(kafka, database_url)), membership.bootstrap.MIGRATIONS
        ) as ms,
        running(evaluation_service, evaluation.bootstrap.MIGRATIONS),
        running(feedback_service, feedback.bootstrap.MIGRATIONS),
    ):
        # Different keys travel on different partitions: a parent is sent before its child.
        for n, (data, correlation) in enumerate([(FEDERATION, "year-2018"), (FENGTAI, None), (GRASSROOTS, None)], 1):
            extra = {"correlationid": correlation} if correlation else {}
            await produce(
                kafka.bootstrap_servers,
                commands_topic,
                [command("union.register", data, **extra)],
                keys=[data["union_id"]],
            )
            await collected.wait_for(
                lambda n=n: len(collected.events(events_topic, "union.registered")) == n, what=f"{n} unions"
            )
        enroll = command(
            "member.enroll",
            {"member_id": "m-1", "union_id": "ft-001", "joined_on": "2018-03-01", "display_name": "Wang Fang"},
            id="enroll-m-1",
        )
        await produce(kafka.bootstrap_servers, commands_topic, [enroll], keys=["m-1"])
        await collected.wait_for(lambda: collected.events(events_topic, "member.enrolled"), what="member.enrolled")

        enrolled = collected.events(events_topic, "member.enrolled")[0]
        assert enrolled["data"] == {"member_id": "m-1", "union_id": "ft-001", "joined_on": "2018-03-01"}
        assert enrolled["source"] == "membership"
        assert enrolled["correlationid"] == "enroll-m-1"
        federation = [e for e in collected.events(events_topic, "union.registered") if e["data"]["union_id"] == "bj"]
        assert federation[0]["correlationid"] == "year-2018"
        assert b"Wang Fang" not in b"".join(c.value for c in collected.records)

        async with client(ms) as http:
            member = (await http.get("/members/m-1")).json()
            assert (member["union_id"], member["status"]) == ("ft-001", "active")
            assert "display_name" not in member
        for other in (evaluation_service, feedback_service):
            async with client(other) as http:
                for _ in range(200):
                    response = await http.get("/membership-view/members/m-1")
                    if response.status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                assert response.json() == {"member_id": "m-1", "union_id": "ft-001", "status": "active"}
