"""Membership's repositories: tables kept in memory for a batch (`TableRepository`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.inserts import InsertsTogether, insert_rows
from unionhub_runtime.repositories import TableRepository, dataclass_rows
from unionhub_runtime.unit_of_work import Journal

from ..domain import model
from . import orm


class StationRepository(TableRepository[model.Station]):
    def __init__(self, session: AsyncSession, journal: Journal) -> None:
        super().__init__(session, journal, orm.stations, model.Station)

    def to_row(self, aggregate: model.Station) -> dict[str, Any]:
        return {**super().to_row(aggregate), "services": ",".join(aggregate.services)}

    def from_row(self, row: dict[str, Any]) -> model.Station:
        return model.Station(**{**row, "services": tuple(row["services"].split(","))})


class MemberRepository(TableRepository[model.Member]):
    """Members, and their history entries in the order the commands recorded them."""

    def __init__(self, session: AsyncSession, journal: Journal) -> None:
        super().__init__(session, journal, orm.members, model.Member)
        self._history: list[model.HistoryEntry] = []

    async def _add(self, aggregate: model.Member) -> None:
        await super()._add(aggregate)
        self._take_history(aggregate)

    async def _save(self, aggregate: model.Member) -> None:
        await super()._save(aggregate)
        self._take_history(aggregate)

    def _take_history(self, member: model.Member) -> None:
        self._journal.append(self._history, *member.new_history)
        member.new_history.clear()

    async def flush(self, together: InsertsTogether | None = None) -> None:
        await super().flush(together)
        if self._history:
            await insert_rows(self._session, orm.member_history, dataclass_rows(self._history), together)
            self._history.clear()
