"""Evaluation's rules through the message bus with in-memory ports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from evaluation.domain import commands, events
from evaluation.domain.post_star import WorkerMonth
from evaluation.service_layer import messagebus
from evaluation.service_layer.handlers import Dependencies
from unionhub_domain import Missing, Rejected

from .fakes import FakeUnitOfWork

NOW = datetime(2018, 11, 2, 10, 0, tzinfo=UTC)
DEPS = Dependencies(now=lambda: NOW)
THRESHOLDS = {"5": 90.0, "4": 80.0, "3": 70.0, "2": 60.0, "1": 50.0}
OPEN = commands.OpenCampaign(
    "eda-2018", 2018, "Star homes", {"member": 0.5, "unit": 0.25, "superior": 0.25}, ("h-1", "h-2"), 1, THRESHOLDS
)
_n = iter(range(10**6))


def rating(kind: str, rater: str, home: str = "h-1", score: int = 80, at: datetime = NOW) -> commands.SubmitRating:
    scores = dict.fromkeys(("organisation", "facilities", "work", "labour_relations", "finances"), score)
    return commands.SubmitRating(f"cmd-{next(_n)}", "eda-2018", home, kind, rater, scores, at)


async def run(uow: FakeUnitOfWork, command: commands.Command, deps: Dependencies = DEPS) -> list[events.Event]:
    return await messagebus.bus(deps).handle(command, uow)


async def rejected(uow: FakeUnitOfWork, command: commands.Command) -> str:
    with pytest.raises(Rejected) as caught:
        await run(uow, command)
    return caught.value.code


async def opened() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    uow.membership.homes.update({"h-1": "u-1", "h-2": "u-2"})
    uow.membership.members.update({"m-1": ("u-1", "active"), "m-2": ("u-2", "active"), "m-3": ("u-1", "left")})
    await run(uow, OPEN)
    return uow


@pytest.mark.parametrize(
    "weights", [{"member": 0.5, "unit": 0.5, "superior": 0.1}, {"member": 1.2, "unit": -0.1, "superior": -0.1}]
)
async def test_weights_must_be_non_negative_and_sum_to_one(weights: dict[str, float]) -> None:
    bad = commands.OpenCampaign("c", 2018, "t", weights, ("h",), 1, THRESHOLDS)
    assert await rejected(FakeUnitOfWork(), bad) == "invalid_weights"


async def test_opening_the_same_campaign_twice_answers_again_and_other_data_is_a_conflict() -> None:
    uow = await opened()
    assert await run(uow, OPEN) == [events.CampaignOpened(**vars(OPEN))]
    changed = commands.OpenCampaign(**{**vars(OPEN), "title": "Other"})
    assert await rejected(uow, changed) == "conflict"


async def test_a_member_of_the_homes_union_rates_and_the_value_is_the_mean() -> None:
    uow = await opened()
    [accepted] = await run(uow, rating("member", "m-1", score=83))
    assert isinstance(accepted, events.RatingAccepted) and accepted.value == 83.0


async def held_for(uow: FakeUnitOfWork, command: commands.Command) -> tuple[str, str]:
    """(what the command waits for, the code it gets if that never comes)."""
    with pytest.raises(Missing) as caught:
        await run(uow, command)
    return caught.value.waiting_for, caught.value.code


async def test_a_member_of_another_union_or_who_left_is_held_then_not_a_member() -> None:
    uow = await opened()
    assert await held_for(uow, rating("member", "m-2")) == ("member:m-2", "not_a_member")
    assert await held_for(uow, rating("member", "m-3")) == ("member:m-3", "not_a_member")
    del uow.membership.homes["h-2"]  # its home.registered still on its way
    assert await held_for(uow, rating("member", "m-2", home="h-2")) == ("home:h-2", "not_a_member")


async def test_ratings_for_unknown_campaigns_or_homes_outside_it_are_rejected() -> None:
    uow = await opened()
    assert await rejected(uow, rating("unit", "unit-1", home="h-9")) == "not_in_campaign"
    other = commands.SubmitRating("x", "nope", "h-1", "unit", "u", rating("unit", "u").scores, NOW)
    assert await rejected(uow, other) == "not_found"


async def test_an_unknown_member_is_held_and_accepted_once_membership_knows_them() -> None:
    uow = await opened()
    early = rating("member", "m-new")
    assert await held_for(uow, early) == ("member:m-new", "not_a_member")
    assert uow.ratings.log == []  # a held rating leaves no trace
    uow.membership.members["m-new"] = ("u-1", "active")
    [accepted] = await run(uow, early)
    assert isinstance(accepted, events.RatingAccepted) and accepted.command_id == early.command_id


async def test_a_rater_is_judged_on_the_shanghai_day_of_the_rating() -> None:
    uow = await opened()
    uow.membership.homes["h-2"] = "u-2"
    uow.membership.stays["m-t"] = [("u-1", date(2018, 3, 1), date(2018, 6, 1)), ("u-2", date(2018, 6, 1), None)]
    shanghai = timezone(timedelta(hours=8))
    may_31_late = datetime(2018, 5, 31, 23, 30, tzinfo=shanghai)
    june_1_early = datetime(2018, 5, 31, 16, 30, tzinfo=UTC)  # 00:30 on June 1st in Shanghai
    [accepted] = await run(uow, rating("member", "m-t", "h-1", at=may_31_late))
    assert isinstance(accepted, events.RatingAccepted)
    assert await held_for(uow, rating("member", "m-t", "h-1", at=june_1_early)) == ("member:m-t", "not_a_member")
    [accepted] = await run(uow, rating("member", "m-t", "h-2", at=june_1_early))
    assert isinstance(accepted, events.RatingAccepted)


async def test_a_raters_later_rating_replaces_the_earlier_one() -> None:
    uow = await opened()
    await run(uow, rating("member", "m-1", score=60, at=NOW))
    await run(uow, rating("member", "m-1", score=90, at=NOW + timedelta(hours=1)))
    await run(uow, rating("member", "m-1", score=10, at=NOW - timedelta(hours=1)))  # older: does not replace
    await run(uow, rating("unit", "unit-1", score=80))
    await run(uow, rating("superior", "fed", score=70))
    emitted = await run(uow, commands.CloseCampaign("eda-2018"))
    awarded = {e.home_id: e for e in emitted if isinstance(e, events.HomeStarAwarded)}
    assert (awarded["h-1"].member_avg, awarded["h-1"].member_ratings, awarded["h-1"].composite) == (90.0, 1, 82.5)
    assert awarded["h-2"].reason is not None and awarded["h-2"].stars == 0


async def test_closing_publishes_results_once_and_rejects_late_ratings() -> None:
    uow = await opened()
    emitted = await run(uow, commands.CloseCampaign("eda-2018"))
    assert [type(e).__name__ for e in emitted] == ["CampaignClosed", "HomeStarAwarded", "HomeStarAwarded"]
    assert await rejected(uow, commands.CloseCampaign("eda-2018")) == "closed"
    assert await rejected(uow, rating("unit", "unit-1")) == "closed"


async def test_post_stars_are_awarded_once_per_month_and_post() -> None:
    uow = FakeUnitOfWork()
    uow.post_stars.months["2018-11"] = [
        WorkerMonth("p1", "w1", 30, 30 * 95_000),
        WorkerMonth("p1", "w2", 19, 19 * 99_000),
        WorkerMonth("p2", "w3", 5, 5 * 99_000),
    ]
    emitted = await run(uow, commands.ClosePostStarMonth("2018-11"))
    assert [(type(e).__name__, getattr(e, "worker_id", None)) for e in emitted] == [
        ("PostStarAwarded", "w1"),
        ("PostStarMonthClosed", None),
    ]
    again = await run(uow, commands.ClosePostStarMonth("2018-11"))
    assert [type(e).__name__ for e in again] == ["PostStarMonthClosed"] and again[0].posts_awarded == 0
    assert await rejected(uow, commands.ClosePostStarMonth("2018-11", "p1")) == "closed"


@pytest.mark.parametrize(("grade", "reward"), [("none", 0), ("qualified", 20_000), ("excellent", 30_000)])
async def test_studio_rewards_follow_the_grade_and_a_reassessment_replaces(grade: str, reward: int) -> None:
    uow = FakeUnitOfWork()
    await run(uow, commands.AssessStudio("st-1", "sg", 2018, "qualified", 1e6))
    [rewarded] = await run(uow, commands.AssessStudio("st-1", "sg", 2018, grade, 2e6))
    assert rewarded == events.StudioRewarded("st-1", 2018, grade, reward)
    assert uow.studios.rows[("st-1", 2018)] == (grade, reward)
