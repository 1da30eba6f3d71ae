"""Evaluation's ports: what handlers read and write, independent of the database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from unionhub_runtime.unit_of_work import AbstractRepository, AbstractUnitOfWork

from ..domain import commands, model
from ..domain.post_star import PostStar, WorkerMonth
from ..domain.scoring import HomeResult


class AbstractRatings(ABC):
    @abstractmethod
    async def put(self, rating: commands.SubmitRating, value: Fraction) -> None:
        """Keeps the rater's latest rating (by `submitted_at`) of the home."""

    @abstractmethod
    async def values(self, campaign_id: str) -> dict[str, dict[str, list[Fraction]]]:
        """home -> rater kind -> rating values."""

    @abstractmethod
    async def audit(
        self, rating: commands.SubmitRating, outcome: str, code: str | None, reason: str | None, at: datetime
    ) -> None: ...


class AbstractMembership(ABC):
    """Evaluation's own view of membership, fed by `membership.events`."""

    @abstractmethod
    async def union_on(self, member_id: str, day: date) -> str | None:
        """The union the member was active in on `day`, by the history received so far."""

    @abstractmethod
    async def home_union(self, home_id: str) -> str | None: ...


class AbstractResults(ABC):
    @abstractmethod
    async def save(self, campaign_id: str, results: Sequence[HomeResult]) -> None: ...


class AbstractPostStars(ABC):
    @abstractmethod
    async def worker_months(self, month: str, post_id: str | None) -> list[WorkerMonth]: ...

    @abstractmethod
    async def awarded_posts(self, month: str) -> set[str]: ...

    @abstractmethod
    async def award(self, month: str, star: PostStar) -> None: ...


class AbstractStudios(ABC):
    @abstractmethod
    async def put(self, assessment: commands.AssessStudio, reward_cny: int) -> None: ...


class UnitOfWork(AbstractUnitOfWork):
    campaigns: AbstractRepository[model.Campaign]
    ratings: AbstractRatings
    membership: AbstractMembership
    results: AbstractResults
    post_stars: AbstractPostStars
    studios: AbstractStudios

    def repositories(self) -> Sequence[AbstractRepository[Any]]:
        return (self.campaigns,)
