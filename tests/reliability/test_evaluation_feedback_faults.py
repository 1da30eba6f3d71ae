"""Scenarios 9 and 10 of the fault-injection suite (issue 14, finding 11): evaluation and
feedback as real processes on PostgreSQL, two instances each, one killed with SIGKILL in the
middle of their work (rating and work-score batches, an overdue-timer transaction) and a
rebalance under way. Lost 0, doubled 0, every command answered once (one answer event id;
a redelivered copy of it is the same answer)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.reliability.harness import Fleet, Ledger, events_on_topic, fetch
from tests.support import command, eventually
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.reliability
SCORES = {"organisation": 90, "facilities": 80, "work": 85, "labour_relations": 95, "finances": 75}
HOMES = ["h-0", "h-1", "h-2"]


def membership_event(type_: str, data: dict[str, object], n: str) -> bytes:
    return command(type_, data, id=f"mev-{type_}-{n}", source="membership")


def answers_by_command(events: list[dict[str, object]], types: set[str]) -> dict[str, set[str]]:
    """The distinct event ids answering each command (redelivered copies share their id)."""
    found: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] in types:
            found[str(event["correlationid"])].add(str(event["id"]))
    return found


async def test_evaluation_killed_mid_batch_during_a_rebalance_counts_every_rating_and_item_once(
    kafka: KafkaSettings, pg_url: str, fleet_of: Callable[[str], Fleet]
) -> None:
    members, items, repeats = 1_500, 20_000, 2_000
    fleet = fleet_of("evaluation")
    p, ledger = kafka.topic_prefix, Ledger(members)
    view = [
        (
            h,
            membership_event(
                "home.registered",
                {"home_id": h, "union_id": "u-1", "name": h, "category": "enterprise", "opened_on": "2010-01-01"},
                h,
            ),
        )
        for h in HOMES
    ]
    view += [
        (
            f"m-{n}",
            membership_event(
                "member.enrolled", {"member_id": f"m-{n}", "union_id": "u-1", "joined_on": "2018-01-01"}, str(n)
            ),
        )
        for n in range(members)
    ]
    await ledger.send(kafka.bootstrap_servers, p + "membership.events", view)
    await ledger.send(
        kafka.bootstrap_servers,
        p + "evaluation.commands",
        [
            (
                "c-1",
                command(
                    "campaign.open",
                    {
                        "campaign_id": "c-1",
                        "year": 2018,
                        "title": "Stars 2018",
                        "weights": {"member": 0.5, "unit": 0.25, "superior": 0.25},
                        "home_ids": HOMES,
                        "min_member_ratings": 1,
                        "star_thresholds": {"5": 90.0, "4": 80.0, "3": 70.0},
                    },
                    id="open-c-1",
                ),
            )
        ],
    )
    ratings = [
        (
            "c-1",
            command(
                "rating.submit",
                {
                    "campaign_id": "c-1",
                    "home_id": HOMES[n % 3],
                    "rater_kind": "member",
                    "rater_id": f"m-{n}",
                    "scores": SCORES,
                    "submitted_at": "2018-11-02T10:00:00+08:00",
                },
                id=f"rate-{n}",
            ),
        )
        for n in range(members)
    ]
    scored = [
        (
            f"w-{n % 97}",
            command(
                "work.scored",
                {
                    "item_id": f"slab-{n}",
                    "worker_id": f"w-{n % 97}",
                    "post_id": f"post-{n % 7}",
                    "score": 90 + n % 10,
                    "scored_at": "2018-11-15T10:00:00+08:00",
                },
                id=f"score-{n}",
            ),
        )
        for n in range(items)
    ]
    scored += [(key, value.replace(b'"id":"score-', b'"id":"again-')) for key, value in scored[:repeats]]
    first = fleet.start()
    stream = asyncio.gather(
        ledger.send(kafka.bootstrap_servers, p + "evaluation.commands", ratings, chunk=100, pause=0.05),
        ledger.send(kafka.bootstrap_servers, p + "evaluation.work-scores", scored, chunk=1_000, pause=0.05),
    )
    while first.metric("evaluation_work_items_ingested_total") < 4_000:
        await asyncio.sleep(0.05)
    fleet.start()  # a second instance: the group rebalances under way
    await asyncio.sleep(1.0)
    fleet.kill(first)  # SIGKILL, mid-batch
    fleet.start()
    await stream

    async def settled() -> bool:
        (row,) = await fetch(
            pg_url,
            "SELECT (SELECT count(*) FROM rating_audit) AS audited, "
            "(SELECT coalesce(sum(item_count), 0) FROM worker_months) AS counted, "
            "(SELECT count(*) FROM outbox WHERE published_at IS NULL) AS pending",
        )
        return row["audited"] >= members and row["counted"] >= items and row["pending"] == 0

    await eventually(settled, "every rating and item applied", timeout=240, step=0.5)
    (row,) = await fetch(
        pg_url,
        "SELECT (SELECT count(*) FROM ratings) AS ratings, "
        "(SELECT count(*) FROM rating_audit WHERE outcome = 'accepted') AS accepted, "
        "(SELECT sum(item_count) FROM worker_months) AS items, "
        "(SELECT sum(score_sum) FROM worker_months) AS score_sum",
    )
    assert (row["ratings"], row["accepted"]) == (members, members), "a rating lost or applied twice"
    assert row["items"] == items, "a work item lost or counted twice"
    assert row["score_sum"] == sum((90 + n % 10) * 1000 for n in range(items))
    answers = answers_by_command(
        await events_on_topic(kafka.bootstrap_servers, p + "evaluation.events"), {"rating.accepted", "command.rejected"}
    )
    unanswered = [f"rate-{n}" for n in range(members) if len(answers.get(f"rate-{n}", ())) != 1]
    assert not unanswered, f"{len(unanswered)} ratings without exactly one answer, e.g. {unanswered[:3]}"
    print(
        f"\nscenario 9: {members} ratings and {items + repeats} work items ({repeats} repeated) to evaluation, "
        f"a second instance joined and the first was SIGKILLed mid-batch: ratings {row['ratings']}, "
        f"items {row['items']}, lost 0, doubled 0, one answer each; "
        f"{fleet.evidence('unionhub_inbox_duplicates_total'):.0f} redelivered commands skipped"
    )


async def test_feedback_killed_inside_its_overdue_timer_answers_every_opinion_once(
    kafka: KafkaSettings, pg_url: str, fleet_of: Callable[[str], Fleet]
) -> None:
    opinions = 1_200
    fleet = fleet_of("feedback")
    p, ledger = kafka.topic_prefix, Ledger(opinions)
    view = [
        (
            f"m-{n}",
            membership_event(
                "member.enrolled", {"member_id": f"m-{n}", "union_id": "u-1", "joined_on": "2018-01-01"}, str(n)
            ),
        )
        for n in range(opinions)
    ]
    view += [
        (
            "cadre",
            membership_event(
                "member.enrolled", {"member_id": "cadre", "union_id": "u-1", "joined_on": "2018-01-01"}, "cadre"
            ),
        ),
        (
            "cadre",
            membership_event(
                "cadre.appointed",
                {"member_id": "cadre", "union_id": "u-1", "role": "full_time_cadre", "appointed_on": "2018-01-01"},
                "c",
            ),
        ),
    ]
    await ledger.send(kafka.bootstrap_servers, p + "membership.events", view)
    # Due (7 days after submission) one after another over the next half minute, while the
    # answers to half of them arrive: the timer and the consumers race for the same rows.
    start = datetime.now(UTC) - timedelta(days=7) + timedelta(seconds=5)
    submitted = {n: start + timedelta(milliseconds=25 * n) for n in range(opinions)}
    submits = [
        (
            f"o-{n}",
            command(
                "opinion.submit",
                {
                    "opinion_id": f"o-{n}",
                    "member_id": f"m-{n}",
                    "channel": "rating_page",
                    "text": f"Opinion {n}",
                    "submitted_at": submitted[n].isoformat(),
                },
                id=f"submit-{n}",
            ),
        )
        for n in range(opinions)
    ]
    responds = [
        (
            f"o-{n}",
            command(
                "opinion.respond",
                {
                    "opinion_id": f"o-{n}",
                    "responder_id": "cadre",
                    "text": "Done.",
                    "responded_at": (submitted[n] + timedelta(hours=1)).isoformat(),
                },
                id=f"respond-{n}",
            ),
        )
        for n in range(0, opinions, 2)
    ]
    timers = {"FEEDBACK_OVERDUE_CHECK_SECONDS": "0.2"}
    doomed = fleet.start(UNIONHUB_FAILPOINT="timer.wrote:3", **timers)  # dies inside its 3rd timer commit
    fleet.start(**timers)
    await ledger.send(kafka.bootstrap_servers, p + "feedback.commands", submits, chunk=100, pause=0.05)
    await ledger.send(kafka.bootstrap_servers, p + "feedback.commands", responds, chunk=50, pause=0.1)
    await eventually(
        lambda: asyncio.to_thread(lambda: doomed.process.poll() is not None), "the failpoint", timeout=120, step=0.5
    )
    fleet.instances.remove(doomed)
    fleet.retired.append(doomed)
    fleet.start(**timers)

    async def settled() -> bool:
        (row,) = await fetch(
            pg_url,
            "SELECT (SELECT count(*) FROM opinions) AS opinions, "
            "(SELECT count(*) FROM opinions WHERE status = 'responded') AS responded, "
            "(SELECT count(*) FROM opinions WHERE status = 'assigned' AND overdue) AS late, "
            "(SELECT count(*) FROM outbox WHERE published_at IS NULL) AS pending",
        )
        return (row["opinions"], row["responded"], row["late"], row["pending"]) == (
            opinions,
            len(responds),
            opinions - len(responds),
            0,
        )

    await eventually(settled, "every opinion applied, answered or flagged", timeout=240, step=0.5)
    events = await events_on_topic(kafka.bootstrap_servers, p + "feedback.events")
    received = answers_by_command(events, {"opinion.received"})
    responded = answers_by_command(events, {"opinion.responded"})
    overdue: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] == "opinion.overdue":
            overdue[event["data"]["opinion_id"]].add(event["id"])  # type: ignore[index]
    assert all(len(received.get(f"submit-{n}", ())) == 1 for n in range(opinions)), "a submission answered twice"
    assert all(len(responded.get(f"respond-{n}", ())) == 1 for n in range(0, opinions, 2)), "an answer lost/doubled"
    assert all(len(ids) == 1 for ids in overdue.values()), "an opinion flagged overdue twice"
    flagged = {r["opinion_id"] for r in await fetch(pg_url, "SELECT opinion_id FROM opinions WHERE overdue")}
    assert flagged == set(overdue), "the overdue flags stored and published differ"
    assert {f"o-{n}" for n in range(1, opinions, 2)} <= flagged  # every unanswered one, once
    print(
        f"\nscenario 10: {opinions} opinions and {len(responds)} answers to feedback on two instances with "
        f"0.2 s overdue timers, one SIGKILLed inside a timer transaction: {len(flagged)} flagged overdue "
        f"once each, every submission and answer answered once, lost 0, doubled 0"
    )
