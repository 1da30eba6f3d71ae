"""Feedback's workflow and every rejection, through the handlers with in-memory ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback.domain import commands, events
from feedback.domain.events import Submission
from feedback.service_layer import messagebus
from feedback.service_layer.handlers import Dependencies
from unionhub_domain import Missing, Rejected

from .fakes import FakeUnitOfWork

T0 = datetime(2018, 11, 2, 10, 0, tzinfo=UTC)
DEPS = Dependencies(now=lambda: T0, deadline=timedelta(days=7))


def submit(opinion: str = "o-1", member: str = "m-1", at: datetime = T0, text: str = "Canteen closes early"):
    return commands.SubmitOpinion(
        Submission(opinion, member, "rating_page", text, at, "c", "h", None, f"cmd-{opinion}")
    )


def respond(responder: str = "cadre-1", at: datetime = T0 + timedelta(days=2), opinion: str = "o-1"):
    return commands.RespondOpinion(opinion, responder, "Opening hours extended", at)


async def run(uow: FakeUnitOfWork, command: commands.Command) -> list[events.Event]:
    return await messagebus.bus(DEPS).handle(command, uow)


async def rejected(uow: FakeUnitOfWork, command: commands.Command) -> str:
    with pytest.raises(Rejected) as caught:
        await run(uow, command)
    return caught.value.code


def world() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    uow.membership.members.update({"m-1": "u-1", "m-2": "u-1"})
    uow.membership.cadres.update(
        {"cadre-1": ("u-1", "full_time_cadre"), "cadre-2": ("u-2", "full_time_cadre"), "chair-1": ("u-1", "chair")}
    )
    return uow


async def test_an_opinion_is_received_and_assigned_to_the_members_union_due_in_seven_days() -> None:
    uow = world()
    received, assigned = await run(uow, submit())
    assert isinstance(received, events.OpinionReceived)
    assert assigned == events.OpinionAssigned("o-1", "u-1", T0 + timedelta(days=7), "cmd-o-1")


async def test_the_same_opinion_twice_answers_again_and_other_data_is_a_conflict() -> None:
    uow = world()
    first = await run(uow, submit())
    assert await run(uow, submit()) == first
    assert len(uow.opinions.rows) == 1
    assert await rejected(uow, submit(text="Something else")) == "conflict"


async def test_an_opinion_of_an_unknown_member_is_held_then_assigned() -> None:
    uow = world()
    with pytest.raises(Missing) as caught:
        await run(uow, submit("o-2", member="m-new"))
    assert (caught.value.waiting_for, caught.value.code) == ("member:m-new", "not_a_member")
    assert uow.opinions.rows == {}
    uow.membership.members["m-new"] = "u-2"
    assigned = await run(uow, submit("o-2", member="m-new"))
    assert [type(e).__name__ for e in assigned] == ["OpinionReceived", "OpinionAssigned"]


async def test_a_responder_not_known_as_a_cadre_of_the_union_is_held_then_forbidden() -> None:
    uow = world()
    await run(uow, submit())
    with pytest.raises(Missing) as caught:
        await run(uow, respond("cadre-new"))
    assert (caught.value.waiting_for, caught.value.code) == ("cadre:cadre-new", "forbidden")


async def test_only_a_cadre_of_the_assigned_union_may_answer_and_only_once() -> None:
    uow = world()
    await run(uow, submit())
    assert await rejected(uow, respond("cadre-2")) == "forbidden"
    assert await rejected(uow, respond("m-2")) == "forbidden"
    assert await rejected(uow, respond(at=T0 - timedelta(hours=1))) == "date_order"
    [answered] = await run(uow, respond("chair-1"))
    assert answered == events.OpinionResponded("o-1", "u-1", 2 * 86_400)
    assert await rejected(uow, respond()) == "closed"
    assert await rejected(uow, respond(opinion="o-9")) == "not_found"


async def test_only_the_submitting_member_rates_once_after_an_answer() -> None:
    uow = world()
    await run(uow, submit())
    assert await rejected(uow, commands.RateOpinion("o-1", "m-1", 5)) == "not_responded"
    await run(uow, respond())
    assert await rejected(uow, commands.RateOpinion("o-1", "m-2", 5)) == "forbidden"
    assert await run(uow, commands.RateOpinion("o-1", "m-1", 4)) == [events.OpinionRated("o-1", "u-1", 4)]
    assert await rejected(uow, commands.RateOpinion("o-1", "m-1", 5)) == "already_rated"


async def test_overdue_fires_once_whether_the_timer_or_a_late_answer_notices_first() -> None:
    uow = world()
    await run(uow, submit("o-1"))
    await run(uow, submit("o-2"))
    assert await run(uow, commands.MarkOverdue(T0 + timedelta(days=7))) == []  # due, not past due
    fired = await run(uow, commands.MarkOverdue(T0 + timedelta(days=8)))
    assert sorted(e.opinion_id for e in fired) == ["o-1", "o-2"]
    assert await run(uow, commands.MarkOverdue(T0 + timedelta(days=30))) == []
    late = await run(uow, respond(at=T0 + timedelta(days=9)))
    assert [type(e).__name__ for e in late] == ["OpinionResponded"]  # already flagged: not again
    other = world()
    await run(other, submit())
    late = await run(other, respond(at=T0 + timedelta(days=9)))  # answered late before the timer ran
    assert [type(e).__name__ for e in late] == ["OpinionResponded", "OpinionOverdue"]
    assert await run(other, commands.MarkOverdue(T0 + timedelta(days=30))) == []


async def test_full_time_cadres_under_four_visits_a_month_are_named_once() -> None:
    uow = world()
    shanghai_nov = datetime(2018, 10, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 November in Beijing
    for i in range(4):
        await run(uow, commands.LogVisit(f"v-{i}", "cadre-1", "dormitory", shanghai_nov + timedelta(days=i), 2))
    await run(uow, commands.LogVisit("v-9", "cadre-2", "canteen", shanghai_nov, 1))
    assert await rejected(uow, commands.LogVisit("v-9", "cadre-2", "office", shanghai_nov, 1)) == "conflict"
    closed = await run(uow, commands.CloseVisitsMonth("2018-11"))
    assert closed == [
        events.VisitQuotaMissed("2018-11", "cadre-2", "u-2", 1),
        events.VisitsMonthClosed("2018-11", 2, 1),
    ]
    assert await rejected(uow, commands.CloseVisitsMonth("2018-11")) == "closed"
