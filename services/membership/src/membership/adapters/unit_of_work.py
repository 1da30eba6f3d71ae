"""Membership's unit of work: every command of a batch in memory, written once at `flush`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.reads import ReadsTogether
from unionhub_runtime.repositories import TableRepository, preload_together
from unionhub_runtime.unit_of_work import SessionUnitOfWork, keys_of

from ..domain import commands, model
from ..service_layer.ports import UnitOfWork
from . import orm
from .repositories import MemberRepository, StationRepository


class SqlAlchemyUnitOfWork(SessionUnitOfWork, UnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.unions: TableRepository[model.Union] = TableRepository(session, self.journal, orm.unions, model.Union)
        self.members: MemberRepository = MemberRepository(session, self.journal)
        self.homes: TableRepository[model.Home] = TableRepository(session, self.journal, orm.homes, model.Home)
        self.stations: StationRepository = StationRepository(session, self.journal)
        self.cadres: TableRepository[model.Cadre] = TableRepository(session, self.journal, orm.cadres, model.Cadre)

    async def preload(self, batch: Sequence[commands.Command], reads: ReadsTogether | None = None) -> None:
        """Loads everything the batch's commands will look up, a few queries in all."""
        members = keys_of(batch, "member_id")
        await preload_together(
            (self.unions, keys_of(batch, "union_id", "parent_id", "to_union_id")),
            (self.members, members),
            (self.cadres, members),
            (self.homes, keys_of(batch, "home_id")),
            (self.stations, keys_of(batch, "station_id")),
            reads=reads,
        )

    async def write(self, together: InsertsTogether | None = None) -> None:
        for repository in (self.unions, self.members, self.homes, self.stations, self.cadres):
            await repository.flush(together)
