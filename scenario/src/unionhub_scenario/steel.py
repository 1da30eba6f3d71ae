"""A steel mill's month of automatically scored slabs, with the post stars it must give."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .commands import Command, make

WS, EC = "evaluation.work-scores", "evaluation.commands"


@dataclass
class SteelMonth:
    month: str
    items: list[Command] = field(default_factory=list)  # duplicates included
    close: list[Command] = field(default_factory=list)
    stars: dict[str, dict[str, Any]] = field(default_factory=dict)  # post -> expected star
    distinct_items: int = 0


def generate(
    *,
    seed: int = 2018,
    items: int = 300_000,
    posts: int = 12,
    workers_per_post: int = 25,
    duplicates: float = 0.05,
    year: int = 2018,
    month: int = 11,
    prefix: str = "",
) -> SteelMonth:
    rng = random.Random(seed)
    p = prefix
    out = SteelMonth(month=f"{year}-{month:02d}")
    # Shanghai midnight of the 1st is 16:00 UTC the day before: items near the edges test the zone.
    start = datetime(year, month, 1, tzinfo=UTC) - timedelta(hours=8)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) - timedelta(hours=8)
    seconds = int((end - start).total_seconds())
    skill = {(post, w): rng.uniform(70, 98) for post in range(posts) for w in range(workers_per_post)}
    totals: dict[tuple[str, str], list[int]] = {}
    sent = []
    for n in range(items):
        post, worker = rng.randrange(posts), rng.randrange(workers_per_post)
        if worker == workers_per_post - 1 and rng.random() < 0.9:
            worker = 0  # a rarely working, highly skilled worker: fewer than 20 items, never a star
        score = round(min(100.0, max(0.0, rng.gauss(skill[(post, worker)], 4))), 1)
        data: dict[str, Any] = {
            "item_id": f"{p}slab-{n:07d}",
            "worker_id": f"{p}w-{post:02d}-{worker:02d}",
            "post_id": f"{p}post-{post:02d}",
            "score": score,
            "scored_at": (start + timedelta(seconds=rng.randrange(seconds))).isoformat(),
        }
        sent.append(make(WS, "work.scored", data, rng_id=f"{p}item-{n}"))
        key = (data["post_id"], data["worker_id"])
        total = totals.setdefault(key, [0, 0])
        total[0] += 1
        total[1] += round(score * 10)
    for extra in rng.sample(sent, int(items * duplicates)):  # redelivered with a new message id
        sent.append(make(WS, "work.scored", extra.data))
    # A few items of the month before and after (other months in Shanghai time).
    for n, at in enumerate((start - timedelta(seconds=1), end)):
        sent.append(
            make(
                WS,
                "work.scored",
                {
                    "item_id": f"{p}slab-edge-{n}",
                    "worker_id": f"{p}w-00-00",
                    "post_id": f"{p}post-00",
                    "score": 0.0,
                    "scored_at": at.isoformat(),
                },
            )
        )
    rng.shuffle(sent)
    out.items = sent
    out.distinct_items = items
    for post_id in {k[0] for k in totals}:
        rivals = [(Decimal(t[1]) / 10 / t[0], t[0], w) for (pp, w), t in totals.items() if pp == post_id and t[0] >= 20]
        if rivals:
            best = sorted(rivals, key=lambda r: (-r[0], -r[1], r[2]))[0]
            out.stars[post_id] = {
                "post_id": post_id,
                "worker_id": best[2],
                "items": best[1],
                "average": float(best[0].quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
            }
    out.close = [make(EC, "post-star.close-month", {"month": out.month})]
    return out
