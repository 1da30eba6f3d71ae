"""The rating page's opinion box of one year (560 opinions across the Development Area's
16 unions, most answered in time, some late, some never), cadres' grassroots visits, and
the statistics they must give, computed here on their own."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from .commands import Command, Feed, make
from .stars import StarCampaign

MC, FC = "membership.commands", "feedback.commands"
DEADLINE = timedelta(days=7)


@dataclass
class OpinionYear:
    cadres: list[Command] = field(default_factory=list)  # membership: one full-time cadre per union
    submits: list[Command] = field(default_factory=list)
    answers: list[Command] = field(default_factory=list)  # responses and visits
    rates: list[Command] = field(default_factory=list)
    timeline: list[Command] = field(default_factory=list)  # submits and answers in business-time order
    close: list[Command] = field(default_factory=list)
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)  # union -> stats
    quota_missed: set[str] = field(default_factory=set)

    def feed(self) -> Feed:
        """The opinion box and the cadres' visit log as one stream in business-time order, each
        member's rating right after the answer it rates. One stream, because feedback's events
        clock follows the business time it reads (the month's close still waits for it)."""
        rating_of = {c.data["opinion_id"]: c for c in self.rates}
        stream = []
        for command in self.timeline:
            stream.append(command)
            if command.type == "opinion.respond" and command.data["opinion_id"] in rating_of:
                stream.append(rating_of[command.data["opinion_id"]])
        return Feed("opinion-box", stream)


def generate(
    campaign: StarCampaign, *, seed: int = 2018, opinions: int = 560, year: int = 2018, prefix: str = ""
) -> OpinionYear:
    rng = random.Random(seed)
    out = OpinionYear()
    unions = sorted(campaign.member_ids)
    cadre_of = {u: campaign.member_ids[u][0] for u in unions}
    out.cadres = [
        make(
            MC,
            "cadre.appoint",
            {"member_id": cadre_of[u], "union_id": u, "role": "full_time_cadre", "appointed_on": f"{year}-01-02"},
        )
        for u in unions
    ]
    stats: dict[str, list[dict[str, Any]]] = {u: [] for u in unions}
    start = datetime(year, 11, 1, 1, 0, tzinfo=UTC)
    for n in range(opinions):
        union = rng.choice(unions)
        member = rng.choice(campaign.member_ids[union][1:] or campaign.member_ids[union])
        opinion_id = f"{prefix}op-{n:04d}"
        submitted = start + timedelta(seconds=rng.randrange(40 * 86_400))
        out.submits.append(
            make(
                FC,
                "opinion.submit",
                {
                    "opinion_id": opinion_id,
                    "member_id": member,
                    "channel": "rating_page",
                    "text": f"Opinion {n} about the workers' home",
                    "submitted_at": submitted.isoformat(),
                    "campaign_id": campaign.campaign_id,
                    "home_id": campaign.home_of[union],
                    "category": "home",
                },
            )
        )
        fate = rng.random()
        record: dict[str, Any] = {"due": submitted + DEADLINE, "responded": None, "satisfaction": None}
        if fate < 0.92:
            delay = (
                timedelta(seconds=rng.randrange(3600, 6 * 86_400))
                if fate < 0.80
                else timedelta(seconds=rng.randrange(8 * 86_400, 15 * 86_400))
            )
            record["responded"] = submitted + delay
            out.answers.append(
                make(
                    FC,
                    "opinion.respond",
                    {
                        "opinion_id": opinion_id,
                        "responder_id": cadre_of[union],
                        "text": "Thank you, it is done.",
                        "responded_at": record["responded"].isoformat(),
                    },
                )
            )
            if rng.random() < 0.7:
                record["satisfaction"] = rng.choice([3, 4, 4, 5, 5, 5])
                out.rates.append(
                    make(
                        FC,
                        "opinion.rate",
                        {"opinion_id": opinion_id, "member_id": member, "satisfaction": record["satisfaction"]},
                    )
                )
        stats[union].append(record)
    for i, union in enumerate(unions):  # November visits: every fourth cadre falls short
        count = 2 if i % 4 == 0 else 4 + i % 3
        if count < 4:
            out.quota_missed.add(cadre_of[union])
        for v in range(count):
            out.answers.append(
                make(
                    FC,
                    "visit.log",
                    {
                        "visit_id": f"{prefix}visit-{i:02d}-{v}",
                        "cadre_id": cadre_of[union],
                        "place": rng.choice(["production_line", "dormitory", "canteen"]),
                        "visited_at": (start + timedelta(days=3 * v + 1)).isoformat(),
                        "opinions_collected": rng.randint(0, 5),
                    },
                )
            )
    # The year's last business moment: every unanswered opinion is past due by then.
    out.answers.append(
        make(
            FC,
            "visit.log",
            {
                "visit_id": f"{prefix}visit-year-end",
                "cadre_id": cadre_of[unions[0]],
                "place": "office",
                "visited_at": datetime(year, 12, 31, 15, tzinfo=UTC).isoformat(),
                "opinions_collected": 0,
            },
        )
    )
    out.close = [make(FC, "visits.close-month", {"month": f"{year}-11"})]

    def when(command: Command) -> str:
        data = command.data
        return str(data.get("submitted_at") or data.get("responded_at") or data.get("visited_at"))

    # A replay in the order things happened: an opinion is submitted before it is answered.
    out.timeline = sorted(out.submits + out.answers, key=lambda c: (when(c), c.type != "opinion.submit"))
    for union, records in stats.items():
        answered = [(r["responded"] - (r["due"] - DEADLINE)).total_seconds() for r in records if r["responded"]]
        rated = [r["satisfaction"] for r in records if r["satisfaction"] is not None]
        late = [r for r in records if r["responded"] is None or r["responded"] > r["due"]]
        out.truth[union] = {
            "received": len(records),
            "responded": len(answered),
            "responded_in_time": len(answered) - sum(1 for r in late if r["responded"]),
            "overdue": len(late),
            "median_response_seconds": median(answered) if answered else None,
            "mean_satisfaction": round(sum(rated) / len(rated), 2) if rated else None,
        }
    return out
