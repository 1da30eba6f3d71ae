"""In-memory ports for driving evaluation's handlers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from evaluation.domain import commands, model
from evaluation.domain.post_star import PostStar, WorkerMonth
from evaluation.domain.scoring import HomeResult
from evaluation.service_layer import ports
from unionhub_membership_view import union_of_stays
from unionhub_runtime.unit_of_work import AbstractRepository


class FakeCampaigns(AbstractRepository[model.Campaign]):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, model.Campaign] = {}

    async def _get(self, campaign_id: str) -> model.Campaign | None:
        return copy.deepcopy(self.rows.get(campaign_id))

    async def _add(self, campaign: model.Campaign) -> None:
        await self._save(campaign)

    async def _save(self, campaign: model.Campaign) -> None:
        stored = copy.deepcopy(campaign)
        stored.events = []  # events are published, never stored
        self.rows[campaign.campaign_id] = stored


class FakeRatings(ports.AbstractRatings):
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str, str], tuple[Fraction, datetime]] = {}
        self.log: list[tuple[str, str, str | None]] = []

    async def put(self, rating: commands.SubmitRating, value: Fraction) -> None:
        key = (rating.campaign_id, rating.home_id, rating.rater_kind, rating.rater_id)
        if key not in self.rows or self.rows[key][1] <= rating.submitted_at:
            self.rows[key] = (value, rating.submitted_at)

    async def values(self, campaign_id: str) -> dict[str, dict[str, list[Fraction]]]:
        found: dict[str, dict[str, list[Fraction]]] = {}
        for (c, home, kind, _), (value, _) in self.rows.items():
            if c == campaign_id:
                found.setdefault(home, {}).setdefault(kind, []).append(value)
        return found

    async def audit(
        self, rating: commands.SubmitRating, outcome: str, code: str | None, reason: str | None, at: datetime
    ) -> None:
        self.log.append((rating.command_id, outcome, code))


class FakeMembership(ports.AbstractMembership):
    def __init__(self) -> None:
        self.members: dict[str, tuple[str, str]] = {}  # (union, status) for all time
        self.stays: dict[str, list[tuple[str, date, date | None]]] = {}  # (union, from, to) when dates matter
        self.homes: dict[str, str] = {}

    async def union_on(self, member_id: str, day: date) -> str | None:
        if member_id in self.stays:
            return union_of_stays(self.stays[member_id], day)
        union, status = self.members.get(member_id, (None, "unknown"))
        return union if status == "active" else None

    async def home_union(self, home_id: str) -> str | None:
        return self.homes.get(home_id)


class FakeResults(ports.AbstractResults):
    def __init__(self) -> None:
        self.rows: dict[str, list[HomeResult]] = {}

    async def save(self, campaign_id: str, results: Sequence[HomeResult]) -> None:
        self.rows[campaign_id] = list(results)


class FakePostStars(ports.AbstractPostStars):
    def __init__(self) -> None:
        self.months: dict[str, list[WorkerMonth]] = {}
        self.stars: dict[tuple[str, str], PostStar] = {}

    async def worker_months(self, month: str, post_id: str | None) -> list[WorkerMonth]:
        return [w for w in self.months.get(month, []) if post_id in (None, w.post_id)]

    async def awarded_posts(self, month: str) -> set[str]:
        return {p for m, p in self.stars if m == month}

    async def award(self, month: str, star: PostStar) -> None:
        self.stars[(month, star.post_id)] = star


class FakeStudios(ports.AbstractStudios):
    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], Any] = {}

    async def put(self, assessment: commands.AssessStudio, reward_cny: int) -> None:
        self.rows[(assessment.studio_id, assessment.year)] = (assessment.grade, reward_cny)


class FakeUnitOfWork(ports.UnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.campaigns = FakeCampaigns()
        self.ratings = FakeRatings()
        self.membership = FakeMembership()
        self.results = FakeResults()
        self.post_stars = FakePostStars()
        self.studios = FakeStudios()
