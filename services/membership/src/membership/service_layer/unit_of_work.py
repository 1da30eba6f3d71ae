"""The unit of work: repositories over one transaction, and the events aggregates recorded."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Generic, TypeVar

from ..domain import model
from ..domain.events import Event

A = TypeVar("A", bound=model.Aggregate)


class AbstractRepository(ABC, Generic[A]):
    def __init__(self) -> None:
        self.seen: list[A] = []

    async def get(self, key: str) -> A | None:
        found = await self._get(key)
        if found is not None:
            self.seen.append(found)
        return found

    async def add(self, aggregate: A) -> None:
        self.seen.append(aggregate)
        await self._add(aggregate)

    async def save(self, aggregate: A) -> None:
        """Stores the changes of an aggregate obtained with `get`."""
        await self._save(aggregate)

    @abstractmethod
    async def _get(self, key: str) -> A | None: ...

    @abstractmethod
    async def _add(self, aggregate: A) -> None: ...

    async def _save(self, aggregate: A) -> None:
        raise NotImplementedError(f"{type(aggregate).__name__} is never changed after it is added")


class AbstractUnitOfWork(ABC):
    unions: AbstractRepository[model.Union]
    members: AbstractRepository[model.Member]
    homes: AbstractRepository[model.Home]
    stations: AbstractRepository[model.Station]
    cadres: AbstractRepository[model.Cadre]

    def collect_new_events(self) -> Iterator[Event]:
        for repository in (self.unions, self.members, self.homes, self.stations, self.cadres):
            for aggregate in repository.seen:
                while aggregate.events:
                    yield aggregate.events.pop(0)
