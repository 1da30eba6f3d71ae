"""Every outside system streaming at once, none waiting for answers, into the three services
over the real broker (several partitions per topic): no valid command is rejected, and every
figure is the one a careful sender, waiting for each answer, would have got."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from unionhub_scenario import growth, opinions, stars
from unionhub_scenario.commands import Feed
from unionhub_scenario.publisher import Publisher

import evaluation.bootstrap
import feedback.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from tests.support import http_client, running
from unionhub_runtime.settings import HoldSettings, KafkaSettings

pytestmark = pytest.mark.integration


async def eventually_equal(read: Callable[[], Awaitable[Any]], expected: Any, seconds: float = 60) -> Any:
    """What `read` gives once it equals `expected` (or at the end of `seconds`)."""
    for _ in range(int(seconds / 0.2)):
        if (got := await read()) == expected:
            return got
        await asyncio.sleep(0.2)
    return await read()


async def test_every_system_streaming_at_once_gets_the_figures_of_a_careful_sender(
    kafka: KafkaSettings, databases: Callable[[], Awaitable[str]]
) -> None:
    year = growth.generate(seed=11, scale=0.1)
    campaign = stars.generate(seed=11, scale=0.2, with_federation=False)  # the city's federation: from growth
    feedback_year = opinions.generate(campaign, seed=11, opinions=260)
    hold = HoldSettings(hold_seconds=600, hold_check_seconds=0.5)
    common: dict[str, Any] = {"kafka": kafka, "batch_timeout_ms": 10, "hold": hold}
    ms = membership.bootstrap.build(MembershipSettings(database_url=await databases(), **common))
    ev = evaluation.bootstrap.build(EvaluationSettings(database_url=await databases(), **common))
    fb = feedback.bootstrap.build(
        FeedbackSettings(
            database_url=await databases(),
            overdue_clock="events",
            events_clock_quiet_seconds=0.5,
            overdue_check_seconds=0.2,
            **common,
        )
    )
    feeds = [*year.feeds, campaign.hr(*feedback_year.cadres), campaign.portal(), feedback_year.feed()]
    async with (
        running(ms, membership.bootstrap.MIGRATIONS),
        running(ev, evaluation.bootstrap.MIGRATIONS),
        running(fb, feedback.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.stream(feeds, timeout=600)
        await pub.stream([Feed("cadre-app", feedback_year.close)])  # the month's close: after its visits
        sent = sum(len(f.commands) for f in feeds) + 1
        assert sent > 4_000
        assert [e["data"] for e in pub.events("command.rejected")] == []
        assert pub.holds(), "six senders at once on several partitions: something must have overtaken"
        async with http_client(ms) as client:
            for district, truth in year.truth.items():
                params: dict[str, Any] = {"year": 2018, **({"district": district} if district else {})}
                report = (await client.get("/stats/growth", params=params)).json()
                assert {k: report[k] for k in truth} == truth, district
        awarded = {
            e["data"]["home_id"]: e["data"]
            for e in pub.answers[campaign.close[0].id].events
            if e["type"] == "home.star-awarded"
        }
        assert {h: {k: awarded[h][k] for k in truth} for h, truth in campaign.truth.items()} == campaign.truth
        async with http_client(fb) as client:  # overdue flags come from feedback's timer: poll

            async def stats() -> dict[str, Any]:
                return {
                    u: {k: got[k] for k in truth}
                    for u, truth in feedback_year.truth.items()
                    if (got := (await client.get("/stats", params={"union_id": u, "year": 2018})).json())
                }

            assert await eventually_equal(stats, feedback_year.truth) == feedback_year.truth
        missed = {
            e["data"]["cadre_id"]
            for e in pub.answers[feedback_year.close[0].id].events
            if e["type"] == "visit.quota-missed"
        }
        assert missed == feedback_year.quota_missed
