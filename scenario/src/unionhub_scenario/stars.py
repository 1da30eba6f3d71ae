"""The Development Area's star campaign: 16 grassroots unions, 3,890 member raters, unit
and superior ratings, weights 0.5 / 0.25 / 0.25, and the results it must give, computed
here with decimal arithmetic of its own."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .commands import Command, Feed, business_time, make

MC, EC = "membership.commands", "evaluation.commands"
CRITERIA = ("organisation", "facilities", "work", "labour_relations", "finances")
WEIGHTS = {"member": 0.5, "unit": 0.25, "superior": 0.25}
THRESHOLDS = {"5": 90, "4": 80, "3": 70, "2": 60, "1": 50}


@dataclass
class StarCampaign:
    campaign_id: str
    setup: list[Command] = field(default_factory=list)  # membership: unions, homes, members
    open: list[Command] = field(default_factory=list)
    ratings: list[Command] = field(default_factory=list)
    close: list[Command] = field(default_factory=list)
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)  # home -> expected result
    member_ids: dict[str, list[str]] = field(default_factory=dict)  # union -> members
    home_of: dict[str, str] = field(default_factory=dict)  # union -> home

    def hr(self, *more: Command) -> Feed:
        """The Development Area's HR system: its unions, homes and members (and `more`)."""
        return Feed.in_business_order("hr-system/development-area", [*self.setup, *more])

    def portal(self) -> Feed:
        """The rating portal: the campaign opened, its ratings as they come, then its close (one
        key, the campaign, so the close is read after every rating)."""
        return Feed("rating-portal", [*self.open, *sorted(self.ratings, key=business_time), *self.close])


def _q(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def generate(
    *,
    seed: int = 2017,
    scale: float = 1.0,
    prefix: str = "",
    year: int = 2018,
    unions: int = 16,
    raters: int = 3_890,
    with_federation: bool = True,
) -> StarCampaign:
    """`with_federation=False` when another part of the scenario registers the city federation."""
    rng = random.Random(seed)
    p = prefix
    raters = max(unions * 2, round(raters * scale))
    out = StarCampaign(campaign_id=f"{p}eda-{year}")
    if with_federation:
        out.setup.append(
            make(
                MC,
                "union.register",
                {"union_id": f"{p}bj", "name": "Beijing Federation", "level": "federation", "founded_on": "1949-01-01"},
            )
        )
    out.setup.append(
        make(
            MC,
            "union.register",
            {
                "union_id": f"{p}eda",
                "name": "Development Area Federation",
                "level": "district",
                "parent_id": f"{p}bj",
                "district": "Development Area",
                "founded_on": "1994-08-25",
            },
        )
    )
    union_ids = [f"{p}eda-{i:02d}" for i in range(unions)]
    out.setup.extend(
        [
            make(
                MC,
                "union.register",
                {
                    "union_id": u,
                    "name": f"Development Area union {i}",
                    "level": "grassroots",
                    "parent_id": f"{p}eda",
                    "district": "Development Area",
                    "kind": "independent",
                    "founded_on": "2012-05-01",
                },
            )
            for i, u in enumerate(union_ids)
        ]
    )
    people: list[Command] = []
    homes: list[Command] = []
    share = [rng.uniform(0.5, 2.0) for _ in union_ids]
    for n in range(raters):
        union = union_ids[n % unions] if n < unions else rng.choices(union_ids, share)[0]
        member = f"{p}eda-m-{n:05d}"
        out.member_ids.setdefault(union, []).append(member)
        people.append(make(MC, "member.enroll", {"member_id": member, "union_id": union, "joined_on": "2016-03-01"}))
    for i, union in enumerate(union_ids):
        out.home_of[union] = f"{p}home-eda-{i:02d}"
        homes.append(
            make(
                MC,
                "home.register",
                {
                    "home_id": out.home_of[union],
                    "union_id": union,
                    "name": f"Workers' home {i}",
                    "category": "enterprise",
                    "opened_on": "2015-06-01",
                },
            )
        )
    out.setup.extend(people + homes)
    out.open = [
        make(
            EC,
            "campaign.open",
            {
                "campaign_id": out.campaign_id,
                "year": year,
                "title": f"Star workers' homes {year}",
                "weights": WEIGHTS,
                "home_ids": list(out.home_of.values()),
                "min_member_ratings": 1,
                "star_thresholds": THRESHOLDS,
            },
        )
    ]
    start = datetime(year, 11, 1, 9, 0, tzinfo=UTC)
    values: dict[str, dict[str, dict[str, Decimal]]] = {}  # home -> kind -> rater -> value

    def rate(home: str, kind: str, rater: str, quality: int, at: datetime) -> None:
        scores = {c: max(0, min(100, quality + rng.randint(-12, 12))) for c in CRITERIA}
        out.ratings.append(
            make(
                EC,
                "rating.submit",
                {
                    "campaign_id": out.campaign_id,
                    "home_id": home,
                    "rater_kind": kind,
                    "rater_id": rater,
                    "scores": scores,
                    "submitted_at": at.isoformat(),
                },
            )
        )
        values.setdefault(home, {}).setdefault(kind, {})[rater] = Decimal(sum(scores.values())) / 5

    quality = {home: rng.randint(55, 96) for home in out.home_of.values()}
    for union, members in out.member_ids.items():
        home = out.home_of[union]
        for j, member in enumerate(members):
            rate(home, "member", member, quality[home], start + timedelta(seconds=j))
    for j, member in enumerate(rng.sample(out.member_ids[union_ids[0]], 3)):  # second thoughts replace
        rate(out.home_of[union_ids[0]], "member", member, 99, start + timedelta(days=1, seconds=j))
    for i, home in enumerate(out.home_of.values()):
        if i != unions - 1:  # the last home's employer never rates: it gets no composite
            rate(home, "unit", f"{p}employer-{i:02d}", quality[home], start + timedelta(days=2))
        for s in range(1 + i % 2):
            rate(home, "superior", f"{p}eda-federation-{s}", quality[home], start + timedelta(days=3))
    out.close = [make(EC, "campaign.close", {"campaign_id": out.campaign_id})]

    composites = {}
    for home in out.home_of.values():
        by_kind = {k: list(v.values()) for k, v in values[home].items()}
        means: dict[str, Decimal] = {k: sum(v, Decimal(0)) / len(v) for k, v in by_kind.items()}
        result: dict[str, Any] = {
            "member_avg": _q(means["member"]),
            "unit_avg": _q(means["unit"]) if "unit" in means else None,
            "superior_avg": _q(means["superior"]),
            "member_ratings": len(by_kind["member"]),
        }
        if "unit" in means:
            composite = _q(sum((Decimal(str(WEIGHTS[k])) * means[k] for k in WEIGHTS), Decimal(0)))
            composites[home] = composite
            result["composite"] = composite
            result["stars"] = max([int(s) for s, t in THRESHOLDS.items() if composite >= t], default=0)
        else:
            result["composite"], result["stars"] = None, 0
        out.truth[home] = result
    ordered = sorted(composites.values(), reverse=True)
    for home, result in out.truth.items():
        result["rank"] = ordered.index(composites[home]) + 1 if home in composites else None
    return out
