"""In-memory ports for driving feedback's handlers."""

from __future__ import annotations

import copy
from datetime import date, datetime

from feedback.domain import model
from feedback.service_layer import ports
from unionhub_domain import month_of


class FakeOpinions(ports.AbstractOpinions):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, model.Opinion] = {}

    async def _get(self, opinion_id: str) -> model.Opinion | None:
        return copy.deepcopy(self.rows.get(opinion_id))

    async def _add(self, opinion: model.Opinion) -> None:
        await self._save(opinion)

    async def _due(self, now: datetime) -> list[model.Opinion]:
        return [
            copy.deepcopy(o)
            for o in self.rows.values()
            if o.status == model.ASSIGNED and not o.overdue and o.due_at < now
        ]

    async def _save(self, opinion: model.Opinion) -> None:
        stored = copy.deepcopy(opinion)
        stored.events = []
        self.rows[opinion.opinion_id] = stored


class FakeMembership(ports.AbstractMembership):
    def __init__(self) -> None:
        self.members: dict[str, str] = {}
        self.cadres: dict[str, tuple[str, str]] = {}

    async def union_on(self, member_id: str, day: date) -> str | None:
        return self.members.get(member_id)

    async def cadre_union_on(self, member_id: str, day: date) -> str | None:
        return self.cadres[member_id][0] if member_id in self.cadres else None

    async def full_time_cadres(self) -> dict[str, str]:
        return {m: u for m, (u, role) in self.cadres.items() if role == "full_time_cadre"}


class FakeVisits(ports.AbstractVisits):
    def __init__(self) -> None:
        self.rows: dict[str, model.Visit] = {}
        self.closed: set[str] = set()

    async def get(self, visit_id: str) -> model.Visit | None:
        return self.rows.get(visit_id)

    async def add(self, visit: model.Visit) -> None:
        self.rows[visit.visit_id] = visit

    async def counts(self, month: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for v in self.rows.values():
            if month_of(v.visited_at) == month:
                found[v.cadre_id] = found.get(v.cadre_id, 0) + 1
        return found

    async def close_month(self, month: str) -> bool:
        if month in self.closed:
            return False
        self.closed.add(month)
        return True


class FakeStreamClock(ports.AbstractStreamClock):
    def __init__(self) -> None:
        self.at: datetime | None = None

    async def advance(self, at: datetime) -> None:
        self.at = at if self.at is None else max(self.at, at)

    async def now(self) -> datetime | None:
        return self.at


class FakeUnitOfWork(ports.UnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.opinions = FakeOpinions()
        self.membership = FakeMembership()
        self.visits = FakeVisits()
        self.clock = FakeStreamClock()
