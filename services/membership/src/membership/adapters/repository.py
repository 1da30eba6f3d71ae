"""SQLAlchemy repositories and unit of work over the caller's session (its transaction)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain import model
from ..service_layer.unit_of_work import A, AbstractRepository, AbstractUnitOfWork
from . import orm


class SqlAlchemyRepository(AbstractRepository[A]):
    """Rows of `table` as aggregates of type `kind`, keyed by the table's primary key."""

    def __init__(self, session: AsyncSession, table: Table, kind: type[A]) -> None:
        super().__init__()
        self._session = session
        self._table = table
        self._kind = kind
        self._key = next(iter(table.primary_key.columns))

    def _to_row(self, aggregate: A) -> dict[str, Any]:
        return {c.name: getattr(aggregate, c.name) for c in self._table.columns}

    def _from_row(self, row: dict[str, Any]) -> A:
        return self._kind(**row)

    async def _get(self, key: str) -> A | None:
        row = (await self._session.execute(select(self._table).where(self._key == key))).mappings().first()
        return self._from_row(dict(row)) if row else None

    async def _add(self, aggregate: A) -> None:
        await self._session.execute(insert(self._table).values(self._to_row(aggregate)))

    async def _save(self, aggregate: A) -> None:
        values = self._to_row(aggregate)
        key = values.pop(self._key.name)
        await self._session.execute(update(self._table).where(self._key == key).values(values))


class StationRepository(SqlAlchemyRepository[model.Station]):
    def _to_row(self, aggregate: model.Station) -> dict[str, Any]:
        return {**super()._to_row(aggregate), "services": ",".join(aggregate.services)}

    def _from_row(self, row: dict[str, Any]) -> model.Station:
        return model.Station(**{**row, "services": tuple(row["services"].split(","))})


class MemberRepository(SqlAlchemyRepository[model.Member]):
    """Members, and their history entries appended as the aggregate records them."""

    async def _add(self, aggregate: model.Member) -> None:
        await super()._add(aggregate)
        await self._append_history(aggregate)

    async def _save(self, aggregate: model.Member) -> None:
        await super()._save(aggregate)
        await self._append_history(aggregate)

    async def _append_history(self, member: model.Member) -> None:
        if member.new_history:
            await self._session.execute(
                insert(orm.member_history), [asdict(entry) for entry in member.new_history]
            )
            member.new_history.clear()


class SqlAlchemyUnitOfWork(AbstractUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.unions = SqlAlchemyRepository(session, orm.unions, model.Union)
        self.members = MemberRepository(session, orm.members, model.Member)
        self.homes = SqlAlchemyRepository(session, orm.homes, model.Home)
        self.stations = StationRepository(session, orm.stations, model.Station)
        self.cadres = SqlAlchemyRepository(session, orm.cadres, model.Cadre)
