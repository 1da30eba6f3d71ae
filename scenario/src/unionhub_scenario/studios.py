"""Shougang's innovation studios of one year and the rewards they must bring."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .commands import Command, make

REWARD = {"none": 0, "qualified": 20_000, "excellent": 30_000}


@dataclass
class StudioYear:
    assessments: list[Command] = field(default_factory=list)
    rewards: dict[str, int] = field(default_factory=dict)  # studio -> reward after reassessments


def generate(*, seed: int = 2018, studios: int = 50, year: int = 2018, prefix: str = "") -> StudioYear:
    rng = random.Random(seed)
    out = StudioYear()
    for i in range(studios):
        studio = f"{prefix}studio-{i:02d}"
        grade = rng.choices(["none", "qualified", "excellent"], [1, 5, 3])[0]
        value = round(rng.uniform(0.5, 20) * 1_000_000, 2)  # ~400 million CNY across the studios
        out.assessments.append(
            make(
                "evaluation.commands",
                "studio.assess",
                {
                    "studio_id": studio,
                    "union_id": f"{prefix}shougang",
                    "year": year,
                    "grade": grade,
                    "value_created_cny": value,
                },
            )
        )
        out.rewards[studio] = REWARD[grade]
    for studio in rng.sample(sorted(out.rewards), 3):  # reassessed: the later grade replaces
        out.assessments.append(
            make(
                "evaluation.commands",
                "studio.assess",
                {
                    "studio_id": studio,
                    "union_id": f"{prefix}shougang",
                    "year": year,
                    "grade": "excellent",
                    "value_created_cny": 25_000_000.0,
                },
            )
        )
        out.rewards[studio] = REWARD["excellent"]
    return out
