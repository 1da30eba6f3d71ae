"""Feedback's ports: what handlers read and write, independent of the database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from unionhub_runtime.unit_of_work import AbstractRepository, AbstractUnitOfWork

from ..domain import model


class AbstractOpinions(AbstractRepository[model.Opinion]):
    async def due(self, now: datetime) -> list[model.Opinion]:
        """Unanswered opinions past their due time, not flagged overdue yet."""
        found = await self._due(now)
        self.seen.extend(found)
        return found

    @abstractmethod
    async def _due(self, now: datetime) -> list[model.Opinion]: ...


class AbstractMembership(ABC):
    @abstractmethod
    async def union_on(self, member_id: str, day: date) -> str | None:
        """The union the member was active in on `day`, by the history received so far."""

    @abstractmethod
    async def cadre_union_on(self, member_id: str, day: date) -> str | None:
        """The union the member was a cadre of on `day`."""

    @abstractmethod
    async def full_time_cadres(self) -> dict[str, str]: ...


class AbstractVisits(ABC):
    @abstractmethod
    async def get(self, visit_id: str) -> model.Visit | None: ...

    @abstractmethod
    async def add(self, visit: model.Visit) -> None: ...

    @abstractmethod
    async def counts(self, month: str) -> dict[str, int]: ...

    @abstractmethod
    async def close_month(self, month: str) -> bool:
        """Marks `month` closed; False when it was closed already."""


class AbstractStreamClock(ABC):
    """The latest business time seen in commands: "now" when a replay of past data is read."""

    @abstractmethod
    async def advance(self, at: datetime) -> None:
        """Moves the clock forward to `at` (never back)."""

    @abstractmethod
    async def now(self) -> datetime | None: ...


class UnitOfWork(AbstractUnitOfWork):
    opinions: AbstractOpinions
    membership: AbstractMembership
    visits: AbstractVisits
    clock: AbstractStreamClock

    def repositories(self) -> Sequence[AbstractRepository[Any]]:
        return (self.opinions,)
