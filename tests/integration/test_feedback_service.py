"""feedback over the real broker, with membership feeding its view of members and cadres."""

from __future__ import annotations

import asyncio

import pytest
from unionhub_scenario import opinions, stars
from unionhub_scenario.commands import Feed, make
from unionhub_scenario.publisher import Publisher

import feedback.bootstrap
import membership.bootstrap
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from tests.support import http_client, running
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration


def build_feedback(kafka: KafkaSettings, url: str, **settings: object):
    return feedback.bootstrap.build(
        FeedbackSettings(
            database_url=url,
            kafka=kafka,
            batch_timeout_ms=10,
            overdue_clock="events",
            events_clock_quiet_seconds=0.5,
            **settings,
        )
    )


async def overdue_events(pub: Publisher) -> list[str]:
    """The opinion of every distinct overdue event (a redelivered event keeps its id)."""
    distinct = {
        e["id"]: e
        for events in (a.events for a in pub.answers.values())
        for e in events
        if e["type"] == "opinion.overdue"
    }
    return [e["data"]["opinion_id"] for e in distinct.values()]


async def test_a_year_of_opinions_gives_the_stats_and_overdue_flags_once_across_a_restart(
    kafka: KafkaSettings, database_url: str, tmp_path
) -> None:
    campaign = stars.generate(seed=5, scale=0.05)
    year = opinions.generate(campaign, seed=5)
    ms = membership.bootstrap.build(
        MembershipSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ms.db'}", kafka=kafka, batch_timeout_ms=10)
    )
    async with (
        running(ms, membership.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.stream([campaign.hr(*year.cadres)], timeout=60)
        # A first instance whose timer runs only at its start: nothing is flagged overdue yet.
        # It reads the opinions while it still learns the members and cadres from membership.
        first = build_feedback(kafka, database_url, overdue_check_seconds=3600)
        async with running(first, feedback.bootstrap.MIGRATIONS):
            await pub.stream([year.feed()], timeout=120)
            assert pub.events("command.rejected") == []
            late_answers = len(await overdue_events(pub))  # only answers that came late, so far
        expected = sum(t["overdue"] for t in year.truth.values())
        assert 0 < late_answers < expected
        second = build_feedback(kafka, database_url, overdue_check_seconds=0.2)
        async with running(second, feedback.bootstrap.MIGRATIONS):
            for _ in range(300):
                if len(await overdue_events(pub)) >= expected:
                    break
                await asyncio.sleep(0.1)
            await pub.play([year.close])
            async with http_client(second) as client:
                for union, truth in year.truth.items():
                    got = (await client.get("/stats", params={"union_id": union, "year": 2018})).json()
                    assert {k: got[k] for k in truth} == truth, union
                some = year.submits[0].data["opinion_id"]
                assert (await client.get(f"/opinions/{some}")).json()["text"].startswith("Opinion 0")
        third = build_feedback(kafka, database_url, overdue_check_seconds=0.2)
        async with running(third, feedback.bootstrap.MIGRATIONS):
            await asyncio.sleep(1.0)  # several timer runs after a restart
        flagged = await overdue_events(pub)
        assert len(flagged) == len(set(flagged)) == expected
        missed = {
            e["data"]["cadre_id"] for e in pub.answers[year.close[0].id].events if e["type"] == "visit.quota-missed"
        }
        assert missed == year.quota_missed


async def test_an_opinion_whose_answer_is_held_for_its_cadre_is_not_flagged_overdue(
    kafka: KafkaSettings, database_url: str, tmp_path
) -> None:
    """The answer came in time but waits for the responder's appointment to reach feedback:
    the opinion is answered in time, never overdue (the events clock moves on meanwhile)."""
    campaign = stars.generate(seed=6, scale=0.01, unions=1)
    union, members = next(iter(campaign.member_ids.items()))
    cadre, member = members[0], members[1]
    ms = membership.bootstrap.build(
        MembershipSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ms.db'}", kafka=kafka, batch_timeout_ms=10)
    )
    fb = build_feedback(kafka, database_url, overdue_check_seconds=0.2)
    submit = make(
        "feedback.commands",
        "opinion.submit",
        {
            "opinion_id": "op-held",
            "member_id": member,
            "channel": "hotline",
            "text": "The lift is broken",
            "submitted_at": "2018-11-01T09:00:00+08:00",
        },
    )
    respond = make(
        "feedback.commands",
        "opinion.respond",
        {
            "opinion_id": "op-held",
            "responder_id": cadre,
            "text": "Repaired.",
            "responded_at": "2018-11-02T09:00:00+08:00",
        },
    )
    later = make(
        "feedback.commands",
        "visit.log",
        {  # moves the events clock a month on
            "visit_id": "v-later",
            "cadre_id": "someone",
            "place": "office",
            "visited_at": "2018-12-05T09:00:00+08:00",
            "opinions_collected": 0,
        },
    )
    appoint = make(
        "membership.commands",
        "cadre.appoint",
        {"member_id": cadre, "union_id": union, "role": "full_time_cadre", "appointed_on": "2018-01-02"},
    )
    async with (
        running(ms, membership.bootstrap.MIGRATIONS),
        running(fb, feedback.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.stream([campaign.hr()], timeout=60)
        await pub.send([submit, respond, later])
        await pub.wait_answered([submit, later], timeout=30)
        await asyncio.sleep(2.0)  # the overdue timer runs ten times while the answer is held
        assert pub.answers[respond.id].held is not None
        await pub.stream([Feed("hr-system/eda", [appoint])])
        await pub.wait_answered([respond], timeout=30)
        await asyncio.sleep(0.5)
    assert pub.answers[respond.id].type == "opinion.responded"
    assert await overdue_events(pub) == []
