"""A district's year of growth shaped like Fengtai 2018, with the answer it must produce.

The generator keeps its own small bookkeeping (who is active where) to know the truth; it
never asks the services. The commands come as three outside systems send them: the city
federation's registry, Fengtai's HR system and Chaoyang's, each a stream in business-time
order, published at the same time. A member's steps all come from the HR system that
enrolled them first (one sender per key keeps the key's order); what one feed names from
another (a union of the other district) is held by membership until it arrives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from .commands import Command, Feed, make

MC = "membership.commands"
SERVICES = ["water", "hot_meal", "rest", "charging", "restroom", "first_aid"]


@dataclass(frozen=True)
class GrowthTargets:
    """Fengtai's figures from the source, multiplied by `scale`."""

    independent_unions: int = 101
    unions_100_plus: int = 68
    members: int = 15_632
    homes: int = 58
    stations: int = 900

    @classmethod
    def scaled(cls, scale: float) -> GrowthTargets:
        base = cls()
        big = max(1, round(base.unions_100_plus * scale))
        return cls(
            independent_unions=max(big, round(base.independent_unions * scale)),
            unions_100_plus=big,
            members=max(big * 100 + 10, round(base.members * scale)),
            homes=max(1, round(base.homes * scale)),
            stations=max(1, round(base.stations * scale)),
        )


@dataclass
class GrowthYear:
    year: int
    district: str
    feeds: list[Feed] = field(default_factory=list)
    truth: dict[str, dict[str, int]] = field(default_factory=dict)  # district -> growth figures
    display_names: list[str] = field(default_factory=list)

    @property
    def commands(self) -> list[Command]:
        return [c for feed in self.feeds for c in feed.commands]


def _day(rng: random.Random, year: int) -> date:
    return date(year, 1, 1) + timedelta(days=rng.randrange(365 if year % 4 else 366))


def generate(*, seed: int = 2018, scale: float = 1.0, year: int = 2018, prefix: str = "") -> GrowthYear:
    """Fengtai's year (plus a neighbouring district as noise) as membership commands."""
    rng = random.Random(seed)
    t = GrowthTargets.scaled(scale)
    out = GrowthYear(year=year, district="Fengtai")
    p = prefix
    unions: list[dict[str, Any]] = [
        {
            "union_id": f"{p}bj",
            "name": "Beijing Federation of Trade Unions",
            "level": "federation",
            "founded_on": "1949-01-01",
        },
    ]
    districts = {"Fengtai": f"{p}ft", "Chaoyang": f"{p}cy"}
    city = [make(MC, "union.register", unions[0])]
    city.extend(
        [
            make(
                MC,
                "union.register",
                {
                    "union_id": uid,
                    "name": f"{name} District Federation",
                    "level": "district",
                    "parent_id": f"{p}bj",
                    "district": name,
                    "founded_on": "1950-01-01",
                },
            )
            for name, uid in districts.items()
        ]
    )
    grassroots: dict[str, dict[str, Any]] = {}

    def add_union(uid: str, district: str, kind: str, founded: date) -> None:
        grassroots[uid] = {
            "union_id": uid,
            "name": f"Union {uid}",
            "level": "grassroots",
            "parent_id": districts[district],
            "district": district,
            "kind": kind,
            "founded_on": founded.isoformat(),
        }

    new_ft = [f"{p}ft-new-{i:04d}" for i in range(t.independent_unions)]
    for uid in new_ft:
        add_union(uid, "Fengtai", "independent", _day(rng, year))
    joint_ft = [f"{p}ft-joint-{i:04d}" for i in range(max(2, t.independent_unions // 4))]
    for uid in joint_ft:
        add_union(uid, "Fengtai", "joint", _day(rng, year))
    old_ft = [f"{p}ft-old-{i:04d}" for i in range(max(3, t.independent_unions // 3))]
    for uid in old_ft:
        add_union(uid, "Fengtai", rng.choice(["independent", "joint"]), _day(rng, year - rng.randint(1, 5)))
    cy = [f"{p}cy-{i:04d}" for i in range(max(3, t.independent_unions // 5))]
    for uid in cy:
        add_union(uid, "Chaoyang", rng.choice(["independent", "joint"]), _day(rng, year - rng.randint(0, 3)))

    # Enrolments in the year: the big new unions get 100+, the rest share what is left.
    big = rng.sample(new_ft + joint_ft, t.unions_100_plus)
    plan: list[str] = []
    for uid in big:
        plan += [uid] * rng.randint(100, 130)
    small = [u for u in new_ft + joint_ft + old_ft if u not in big]
    new_small = {u: 0 for u in small if u not in old_ft}
    while len(plan) < t.members:
        uid = rng.choice(small)
        if uid in new_small:  # a new union outside the big ones stays under 100 members
            if new_small[uid] >= 90:
                uid = rng.choice(old_ft)
            else:
                new_small[uid] += 1
        plan.append(uid)
    plan = plan[: t.members]
    rng.shuffle(plan)
    active: dict[str, str] = {}  # member -> union while active
    member_steps: dict[str, list[Command]] = {}
    enrolled_in_year: dict[str, int] = {"Fengtai": 0, "Chaoyang": 0}
    district_of = {uid: u["district"] for uid, u in grassroots.items()}
    for n, uid in enumerate(plan):
        mid = f"{p}m-{n:07d}"
        name = f"Member {mid} Name"
        out.display_names.append(name)
        joined = max(_day(rng, year), date.fromisoformat(grassroots[uid]["founded_on"]))
        member_steps[mid] = [
            make(
                MC,
                "member.enroll",
                {"member_id": mid, "union_id": uid, "joined_on": joined.isoformat(), "display_name": name},
            )
        ]
        active[mid] = uid
        enrolled_in_year[district_of[uid]] += 1
    # Leaving, transfers and re-enrolment, kept off the big unions' 100-member floor.
    counts = {u: 0 for u in grassroots}
    for u in active.values():
        counts[u] += 1
    movers = rng.sample(sorted(active), k=min(len(active), max(10, len(active) // 20)))
    for i, mid in enumerate(movers):
        uid = active[mid]
        if uid in big and counts[uid] <= 100:
            continue
        joined = date.fromisoformat(member_steps[mid][0].data["joined_on"])
        if joined >= date(year, 12, 30):
            continue  # no room left in the year for a later step
        later = min(joined + timedelta(days=rng.randint(1, 60)), date(year, 12, 30))
        if i % 3 == 0:
            member_steps[mid].append(
                make(MC, "member.leave", {"member_id": mid, "left_on": later.isoformat(), "reason": "changed jobs"})
            )
            del active[mid]
            counts[uid] -= 1
            if i % 2 == 0 and later < date(year, 12, 31):  # back again, the same year: a new enrolment
                again = rng.choice(cy)
                member_steps[mid].append(
                    make(
                        MC,
                        "member.enroll",
                        {"member_id": mid, "union_id": again, "joined_on": (later + timedelta(days=1)).isoformat()},
                    )
                )
                active[mid] = again
                counts[again] += 1
                enrolled_in_year["Chaoyang"] += 1
        else:
            target = rng.choice(cy + old_ft)
            if target == uid:
                continue
            member_steps[mid].append(
                make(
                    MC,
                    "member.transfer",
                    {"member_id": mid, "to_union_id": target, "transferred_on": later.isoformat()},
                )
            )
            active[mid] = target
            counts[uid] -= 1
            counts[target] += 1

    homes = [
        make(
            MC,
            "home.register",
            {
                "home_id": f"{p}home-{i:04d}",
                "union_id": rng.choice(new_ft + old_ft),
                "name": f"Workers' home {i}",
                "category": rng.choice(["enterprise", "demonstration", "public_area"]),
                "opened_on": _day(rng, year).isoformat(),
            },
        )
        for i in range(t.homes)
    ]
    homes += [
        make(
            MC,
            "home.register",
            {
                "home_id": f"{p}home-old-{i}",
                "union_id": rng.choice(old_ft),
                "name": f"Older home {i}",
                "category": "enterprise",
                "opened_on": _day(rng, year - 1).isoformat(),
            },
        )
        for i in range(3)
    ]
    stations = [
        make(
            MC,
            "station.register",
            {
                "station_id": f"{p}st-{i:05d}",
                "union_id": rng.choice(new_ft + old_ft),
                "name": f"Warm station {i}",
                "services": rng.sample(SERVICES, rng.randint(1, 4)),
                "opened_on": _day(rng, year).isoformat(),
            },
        )
        for i in range(t.stations)
    ]
    stations += [
        make(
            MC,
            "station.register",
            {
                "station_id": f"{p}st-cy-{i}",
                "union_id": rng.choice(cy),
                "name": f"Chaoyang station {i}",
                "services": ["water"],
                "opened_on": _day(rng, year).isoformat(),
            },
        )
        for i in range(5)
    ]

    def of(district: str, commands: list[Command]) -> list[Command]:
        return [c for c in commands if district_of[c.data["union_id"]] == district]

    registered = [make(MC, "union.register", u) for u in grassroots.values()]
    members = [step for steps in member_steps.values() for step in steps]  # every member enrolled in Fengtai
    out.feeds = [
        Feed.in_business_order("hr-system/beijing", city),
        Feed.in_business_order(
            "hr-system/fengtai", of("Fengtai", registered) + members + of("Fengtai", homes + stations)
        ),
        Feed.in_business_order("hr-system/chaoyang", of("Chaoyang", registered + homes + stations)),
    ]

    def figures(district: str | None) -> dict[str, int]:
        def here(uid: str) -> bool:
            return district is None or district_of[uid] == district

        founded = [u for u, d in grassroots.items() if here(u) and d["founded_on"].startswith(str(year))]
        return {
            "new_independent_unions": sum(grassroots[u]["kind"] == "independent" for u in founded),
            "new_unions_100_plus": sum(counts[u] >= 100 for u in founded),
            "new_members": sum(v for d, v in enrolled_in_year.items() if district in (None, d)),
            "new_homes": sum(here(c.data["union_id"]) and c.data["opened_on"].startswith(str(year)) for c in homes),
            "new_stations": sum(
                here(c.data["union_id"]) and c.data["opened_on"].startswith(str(year)) for c in stations
            ),
        }

    out.truth = {"Fengtai": figures("Fengtai"), "Chaoyang": figures("Chaoyang"), "": figures(None)}
    return out
