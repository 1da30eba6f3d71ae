"""Feedback's ports: what handlers read and write, independent of the database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import date, datetime

from ..domain import model
from ..domain.events import Event


class AbstractOpinions(ABC):
    def __init__(self) -> None:
        self.seen: list[model.Opinion] = []

    async def get(self, opinion_id: str) -> model.Opinion | None:
        found = await self._get(opinion_id)
        if found is not None:
            self.seen.append(found)
        return found

    async def add(self, opinion: model.Opinion) -> None:
        self.seen.append(opinion)
        await self._add(opinion)

    async def due(self, now: datetime) -> list[model.Opinion]:
        """Unanswered opinions past their due time, not flagged overdue yet."""
        found = await self._due(now)
        self.seen.extend(found)
        return found

    @abstractmethod
    async def _get(self, opinion_id: str) -> model.Opinion | None: ...

    @abstractmethod
    async def _add(self, opinion: model.Opinion) -> None: ...

    @abstractmethod
    async def _due(self, now: datetime) -> list[model.Opinion]: ...

    @abstractmethod
    async def save(self, opinion: model.Opinion) -> None: ...


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


class AbstractUnitOfWork(ABC):
    opinions: AbstractOpinions
    membership: AbstractMembership
    visits: AbstractVisits

    def __init__(self) -> None:
        self.events: list[Event] = []

    def collect_new_events(self) -> Iterator[Event]:
        for opinion in self.opinions.seen:
            while opinion.events:
                yield opinion.events.pop(0)
        while self.events:
            yield self.events.pop(0)
