"""Feedback's business metrics (bounded labels: channels, places, and districts bounded by
`set_bounded`; never ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_domain import Rejected
from unionhub_runtime.metrics import set_bounded

from ..domain import events
from . import orm

DAY = 86_400.0


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "feedback_opinions_received_total",
            "Opinions routed to a union, by channel.",
            ["channel"],
            registry=registry,
        )
        self.response_seconds = Histogram(
            "feedback_response_seconds",
            "Time from an opinion's submission to its answer.",
            buckets=(3600, 6 * 3600, DAY, 2 * DAY, 3 * DAY, 5 * DAY, 7 * DAY, 10 * DAY, 14 * DAY, 30 * DAY),
            registry=registry,
        )
        self.satisfaction = Histogram(
            "feedback_satisfaction",
            "Members' satisfaction with answers (1-5).",
            buckets=(1, 2, 3, 4, 5),
            registry=registry,
        )
        self.overdue_total = Counter("feedback_opinions_overdue_total", "Opinions flagged overdue.", registry=registry)
        self.visits = Counter(
            "feedback_visits_logged_total", "Grassroots visits logged, by place.", ["place"], registry=registry
        )
        self.open = Gauge("feedback_open_opinions", "Unanswered opinions by district.", ["district"], registry=registry)
        self.overdue_open = Gauge(
            "feedback_overdue_open_opinions",
            "Unanswered opinions past due, by district.",
            ["district"],
            registry=registry,
        )

    def applied(self, command: Any, emitted: Sequence[Any]) -> None:
        for e in emitted:
            match e:
                case events.OpinionReceived():
                    self.received.labels(e.submission.channel).inc()
                case events.OpinionResponded():
                    self.response_seconds.observe(e.response_seconds)
                case events.OpinionRated():
                    self.satisfaction.observe(e.satisfaction)
                case events.OpinionOverdue():
                    self.overdue_total.inc()
                case events.VisitLogged():
                    self.visits.labels(e.place).inc()

    def refused(self, command: Any, rejection: Rejected) -> None:
        return None  # counted by the runtime, by type and code

    async def refresh(self, session: AsyncSession) -> None:
        o, u = orm.opinions.c, orm.membership_view.unions.c
        base = (
            select(func.coalesce(u.district, "(unknown)"), func.count())
            .select_from(orm.opinions.outerjoin(orm.membership_view.unions, u.union_id == o.union_id))
            .where(o.status == "assigned")
            .group_by(u.district)
        )
        set_bounded(self.open, (((district,), count) for district, count in await session.execute(base)))
        overdue = await session.execute(base.where(o.overdue.is_(True)))
        set_bounded(self.overdue_open, (((district,), count) for district, count in overdue))
