"""In-memory repositories and unit of work for driving membership's handlers."""

from __future__ import annotations

import copy
from typing import Any

from membership.domain import model
from membership.service_layer.ports import UnitOfWork
from unionhub_runtime.unit_of_work import A, AbstractRepository


class FakeRepository(AbstractRepository[A]):
    def __init__(self, key: str) -> None:
        super().__init__()
        self._key = key
        self.rows: dict[str, A] = {}
        self.history: list[model.HistoryEntry] = []

    async def _get(self, key: str) -> A | None:
        # A copy, as a database would hand back: changes count only once saved.
        found = self.rows.get(key)
        return copy.deepcopy(found) if found is not None else None

    async def _add(self, aggregate: A) -> None:
        assert getattr(aggregate, self._key) not in self.rows, "duplicate primary key"
        self._store(aggregate)

    async def _save(self, aggregate: A) -> None:
        self._store(aggregate)

    def _store(self, aggregate: Any) -> None:
        self.history.extend(getattr(aggregate, "new_history", ()))
        if hasattr(aggregate, "new_history"):
            aggregate.new_history.clear()
        stored = copy.deepcopy(aggregate)
        stored.events = []
        self.rows[getattr(aggregate, self._key)] = stored


class FakeUnitOfWork(UnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.unions = FakeRepository("union_id")
        self.members = FakeRepository("member_id")
        self.homes = FakeRepository("home_id")
        self.stations = FakeRepository("station_id")
        self.cadres = FakeRepository("member_id")

    def fresh(self) -> FakeUnitOfWork:
        """The same stored state behind new repositories, as the next transaction sees it."""
        other = FakeUnitOfWork()
        for name in ("unions", "members", "homes", "stations", "cadres"):
            getattr(other, name).rows = getattr(self, name).rows
            getattr(other, name).history = getattr(self, name).history
        return other
