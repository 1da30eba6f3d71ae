"""evaluation over the real broker, with membership feeding its view of members and homes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from unionhub_scenario import stars, steel
from unionhub_scenario.commands import make
from unionhub_scenario.publisher import Publisher

import evaluation.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from membership.settings import MembershipSettings
from tests.support import eventually, http_client, running
from unionhub_runtime.settings import HoldSettings, KafkaSettings

pytestmark = pytest.mark.integration


def build_membership(kafka: KafkaSettings, url: str):
    return membership.bootstrap.build(MembershipSettings(database_url=url, kafka=kafka, batch_timeout_ms=10))


def build_evaluation(kafka: KafkaSettings, url: str, **settings: object):
    return evaluation.bootstrap.build(
        EvaluationSettings(database_url=url, kafka=kafka, batch_timeout_ms=10, **settings)
    )


@pytest.mark.timeout(900)
async def test_a_campaign_shaped_like_the_source_gives_the_independently_computed_stars(
    kafka: KafkaSettings, database_url: str, tmp_path
) -> None:
    campaign = stars.generate(seed=2017)
    ms = build_membership(kafka, f"sqlite+aiosqlite:///{tmp_path / 'ms.db'}")
    ev = build_evaluation(kafka, database_url)
    async with (
        running(ms, membership.bootstrap.MIGRATIONS),
        running(ev, evaluation.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        # HR enrols the raters while the portal sends their ratings: what comes first is held.
        # A bound on a hang, not a speed goal (the bench has those): 310 s on a slow 2-core machine.
        await pub.stream([campaign.hr(), campaign.portal()], timeout=720)
        assert pub.events("command.rejected") == []
        awarded = {
            e["data"]["home_id"]: e["data"]
            for e in pub.answers[campaign.close[0].id].events
            if e["type"] == "home.star-awarded"
        }
        assert len(awarded) == 16 and len(campaign.ratings) > 3_890
        for home, truth in campaign.truth.items():
            assert {k: awarded[home][k] for k in truth} == truth, home
        async with http_client(ev) as client:
            results = (await client.get(f"/campaigns/{campaign.campaign_id}/results")).json()
            assert results["status"] == "closed"
            assert {h["home_id"]: h["stars"] for h in results["homes"]} == {
                h: t["stars"] for h, t in campaign.truth.items()
            }
            summary = (await client.get(f"/campaigns/{campaign.campaign_id}")).json()
            assert summary["ratings"]["member"] == 3_890
        # closing twice publishes nothing new
        again = make("evaluation.commands", "campaign.close", {"campaign_id": campaign.campaign_id})
        await pub.play([[again]])
        assert [e["data"]["code"] for e in pub.answers[again.id].events] == ["closed"]


async def test_a_rating_sent_before_the_enrolment_is_accepted_when_the_enrolment_arrives(
    kafka: KafkaSettings, database_url: str, tmp_path
) -> None:
    campaign = stars.generate(seed=1, scale=0.01, unions=2)
    ms = build_membership(kafka, f"sqlite+aiosqlite:///{tmp_path / 'ms.db'}")
    ev = build_evaluation(kafka, database_url, hold=HoldSettings(hold_seconds=20, hold_check_seconds=0.2))
    async with (
        running(ev, evaluation.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        scores = dict.fromkeys(stars.CRITERIA, 88)
        union_a, union_b = campaign.home_of
        home_a = campaign.home_of[union_a]
        newcomer = make(
            "evaluation.commands",
            "rating.submit",
            {
                "campaign_id": campaign.campaign_id,
                "home_id": home_a,
                "rater_kind": "member",
                "rater_id": "late-joiner",
                "scores": scores,
                "submitted_at": datetime(2018, 11, 2, tzinfo=UTC).isoformat(),
            },
        )
        outsider = make(
            "evaluation.commands",
            "rating.submit",
            {
                "campaign_id": campaign.campaign_id,
                "home_id": home_a,
                "rater_kind": "member",
                "rater_id": campaign.member_ids[union_b][0],
                "scores": scores,
                "submitted_at": datetime(2018, 11, 2, tzinfo=UTC).isoformat(),
            },
        )
        await pub.play([campaign.open])
        await pub.send([newcomer])  # membership is not even running yet
        await asyncio.sleep(1.0)
        assert not pub.answered(newcomer)
        async with running(ms, membership.bootstrap.MIGRATIONS):
            await pub.stream([campaign.hr()])
            enrol = make(
                "membership.commands",
                "member.enroll",
                {"member_id": "late-joiner", "union_id": union_a, "joined_on": "2018-11-01"},
            )
            await pub.play([[enrol]])
            await pub.wait_answered([newcomer], timeout=30)
            await pub.play([[outsider]])
        held, accepted = pub.answers[newcomer.id].events
        # held for the home (membership was not running) or for the rater, whichever it missed first
        assert held["type"] == "command.held" and held["data"]["waiting_for"] in (
            "home:" + home_a,
            "member:late-joiner",
        )
        assert accepted["type"] == "rating.accepted" and accepted["data"]["value"] == 88.0
        held, rejected = pub.answers[outsider.id].events  # in another union: held, in case it moved, then rejected
        assert (rejected["type"], rejected["data"]["code"]) == ("command.rejected", "not_a_member")
        async with http_client(ev) as client:
            audit = (
                await client.get(f"/campaigns/{campaign.campaign_id}/audit", params={"command_id": newcomer.id})
            ).json()["items"]
        assert [a["outcome"] for a in audit] == ["accepted"]


async def test_a_wait_that_outlasts_the_grace_period_is_rejected(kafka: KafkaSettings, database_url: str) -> None:
    campaign = stars.generate(seed=2, scale=0.01, unions=2)
    ev = build_evaluation(kafka, database_url, hold=HoldSettings(hold_seconds=0.5, hold_check_seconds=0.2))
    async with (
        running(ev, evaluation.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.play([campaign.open])
        ghost = make(
            "evaluation.commands",
            "rating.submit",
            {
                "campaign_id": campaign.campaign_id,
                "home_id": next(iter(campaign.home_of.values())),
                "rater_kind": "member",
                "rater_id": "ghost",
                "scores": dict.fromkeys(stars.CRITERIA, 50),
                "submitted_at": datetime(2018, 11, 2, tzinfo=UTC).isoformat(),
            },
        )
        await pub.play([[ghost]], timeout=20)
        held, rejected = pub.answers[ghost.id].events
        assert held["data"]["waiting_for"].startswith(("home:", "member:"))  # membership is not running
        assert (rejected["data"]["code"], rejected["data"]["command_type"]) == ("not_a_member", "rating.submit")
        # The campaign's audit records the rating whose hold ended as it records any rejection.
        async with http_client(ev) as client:
            audit = (
                await client.get(f"/campaigns/{campaign.campaign_id}/audit", params={"command_id": ghost.id})
            ).json()["items"]
        assert [(a["outcome"], a["code"]) for a in audit] == [("rejected", "not_a_member")]
        # Counted once, as rejected, when its hold ended (never as held: it had no outcome yet).
        ratings = {
            (s.labels["outcome"], s.labels["code"]): s.value
            for metric in ev.definition.registry.collect()
            for s in metric.samples
            if s.name == "evaluation_ratings_total"
        }
        assert ratings == {("rejected", "not_a_member"): 1}


async def test_a_month_of_work_items_with_duplicates_and_a_restart_gives_the_true_post_stars(
    kafka: KafkaSettings, database_url: str
) -> None:
    month = steel.generate(seed=11, items=40_000, posts=6, workers_per_post=20)
    half = len(month.items) // 2
    async with Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub:
        first = build_evaluation(kafka, database_url)
        async with running(first, evaluation.bootstrap.MIGRATIONS):
            await pub.send(month.items[:half])
            await asyncio.sleep(0.5)  # stop in the middle of the stream
        await pub.send(month.items[half:])
        second = build_evaluation(kafka, database_url)
        async with running(second, evaluation.bootstrap.MIGRATIONS):
            for _ in range(600):  # every distinct item, plus the two just outside the month
                if await _ingested(second) == month.distinct_items + 2:
                    break
                await asyncio.sleep(0.1)
            assert await _ingested(second) == month.distinct_items + 2
            assert second.definition.registry.get_sample_value("evaluation_work_items_duplicates_total") > 0
            await pub.play([month.close])
            answer = pub.answers[month.close[0].id]

            async def all_read() -> bool:
                # The answer is final at its first event; the others come on other partitions.
                closed = [e for e in answer.events if e["type"] == "post-star.month-closed"]
                return (
                    bool(closed)
                    and sum(e["type"] == "post-star.awarded" for e in answer.events)
                    == closed[0]["data"]["posts_awarded"]
                )

            await eventually(all_read, "every event answering the month's close")
            awarded = {e["data"]["post_id"]: e["data"] for e in answer.events if e["type"] == "post-star.awarded"}
            assert awarded == {post: {"month": month.month, **star} for post, star in month.stars.items()}
            async with http_client(second) as client:
                served = (await client.get("/post-stars", params={"month": month.month})).json()["stars"]
            assert {s["post_id"]: s for s in served} == month.stars


async def _ingested(service) -> int:
    from sqlalchemy import func, select

    from evaluation.adapters import orm

    async with service.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(orm.work_items)) or 0)
