"""Evaluation's business metrics (bounded labels: kinds and codes, never ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_domain import Rejected

from ..domain import commands, events
from . import orm


class EvaluationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.ratings = Counter(
            "evaluation_ratings_total",
            "Ratings by rater kind, outcome (accepted, rejected) and rejection code, once committed; a rating held"
            " for membership counts when its hold is settled (held now: unionhub_held_commands).",
            ["kind", "outcome", "code"],
            registry=registry,
        )
        self.work_items = Counter("evaluation_work_items_ingested_total", "Work items counted.", registry=registry)
        self.work_duplicates = Counter(
            "evaluation_work_items_duplicates_total", "Work items dropped as already counted.", registry=registry
        )
        self.campaigns_open = Gauge("evaluation_campaigns_open", "Campaigns accepting ratings.", registry=registry)
        self.stars = Gauge(
            "evaluation_home_stars", "Homes by stars awarded in closed campaigns.", ["stars"], registry=registry
        )

    def applied(self, command: Any, emitted: Sequence[Any]) -> None:
        for event in emitted:
            if isinstance(event, events.RatingAccepted):
                self.ratings.labels(event.rater_kind, "accepted", "").inc()

    def refused(self, command: Any, rejection: Rejected) -> None:
        if isinstance(command, commands.SubmitRating):
            self.ratings.labels(command.rater_kind, "rejected", rejection.code).inc()

    async def refresh(self, session: AsyncSession) -> None:
        self.campaigns_open.set(
            await session.scalar(
                select(func.count()).select_from(orm.campaigns).where(orm.campaigns.c.status == "open")
            )
            or 0
        )
        for stars, count in await session.execute(
            select(orm.results.c.stars, func.count()).group_by(orm.results.c.stars)
        ):
            self.stars.labels(str(stars)).set(count)
