"""SQLAlchemy repositories over one batch's transaction.

Each repository keeps an identity map for the batch: what one command changed, the next
command of the batch sees, and everything is written in a few statements at `flush`
(group commit). A rejected command's changes are taken back with `discard_command`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.database import chunks

from ..domain import commands, model
from ..service_layer.unit_of_work import A, AbstractRepository, AbstractUnitOfWork
from . import orm


class SqlAlchemyRepository(AbstractRepository[A]):
    """Rows of `table` as aggregates of type `kind`, keyed by the table's primary key."""

    def __init__(self, session: AsyncSession, table: Table, kind: type[A]) -> None:
        super().__init__()
        self._session, self._table, self._kind = session, table, kind
        self._key = next(iter(table.primary_key.columns))
        self._loaded: dict[str, A | None] = {}  # None: known not to exist
        self._inserts: dict[str, A] = {}
        self._updates: dict[str, A] = {}
        self._journal: dict[str, A | None] = {}  # state before the current command

    def _key_of(self, aggregate: A) -> str:
        return str(getattr(aggregate, self._key.name))

    def _to_row(self, aggregate: A) -> dict[str, Any]:
        return {c.name: getattr(aggregate, c.name) for c in self._table.columns}

    def _from_row(self, row: dict[str, Any]) -> A:
        return self._kind(**row)

    async def preload(self, keys: Iterable[str]) -> None:
        """Loads the aggregates of `keys` (and learns which do not exist) in bulk."""
        wanted = [k for k in set(keys) if k not in self._loaded]
        for chunk in chunks(wanted):
            result = await self._session.execute(select(self._table).where(self._key.in_(chunk)))
            found = {str(row[self._key.name]): self._from_row(dict(row)) for row in result.mappings()}
            for key in chunk:
                self._loaded[key] = found.get(key)

    async def _get(self, key: str) -> A | None:
        if key not in self._loaded:
            await self.preload([key])
        found = self._loaded[key]
        if key not in self._journal:
            self._journal[key] = _snapshot(found)
        return found

    async def _add(self, aggregate: A) -> None:
        key = self._key_of(aggregate)
        self._journal.setdefault(key, self._loaded.get(key))
        self._loaded[key] = aggregate
        self._inserts[key] = aggregate

    async def _save(self, aggregate: A) -> None:
        key = self._key_of(aggregate)
        if key in self._inserts:
            self._inserts[key] = aggregate  # still to be inserted: its final state goes in
        else:
            self._updates[key] = aggregate

    def begin_command(self) -> None:
        self.seen.clear()
        self._journal.clear()

    def discard_command(self) -> None:
        """Puts back every aggregate the current command touched as it was before."""
        for key, before in self._journal.items():
            self._loaded[key] = before
            for pending in (self._inserts, self._updates):
                if key in pending:
                    if before is None:
                        del pending[key]
                    else:
                        pending[key] = before
        self.begin_command()

    async def flush(self) -> None:
        if self._inserts:
            await self._session.execute(insert(self._table), [self._to_row(a) for a in self._inserts.values()])
        if self._updates:
            columns = [c.name for c in self._table.columns if c is not self._key]
            statement = (
                update(self._table)
                .where(self._key == bindparam("_key"))
                .values({c: bindparam(c) for c in columns})
            )
            rows = [
                {c: v for c, v in self._to_row(a).items() if c != self._key.name} | {"_key": k}
                for k, a in self._updates.items()
            ]
            await self._session.execute(statement, rows)
        self._inserts.clear()
        self._updates.clear()


def _snapshot(aggregate: A | None) -> A | None:
    """A copy to restore if the command is rejected. Aggregates hold immutable values and
    lists of immutable entries, so copying the lists is as deep as it needs to go (and far
    cheaper than `copy.deepcopy` per aggregate per command)."""
    if aggregate is None:
        return None
    clone = copy.copy(aggregate)
    for name, value in vars(clone).items():
        if isinstance(value, list):
            setattr(clone, name, list(value))
    return clone


_HISTORY_COLUMNS = [f.name for f in fields(model.HistoryEntry)]


class StationRepository(SqlAlchemyRepository[model.Station]):
    def _to_row(self, aggregate: model.Station) -> dict[str, Any]:
        return {**super()._to_row(aggregate), "services": ",".join(aggregate.services)}

    def _from_row(self, row: dict[str, Any]) -> model.Station:
        return model.Station(**{**row, "services": tuple(row["services"].split(","))})


class MemberRepository(SqlAlchemyRepository[model.Member]):
    """Members, and their history entries in the order the commands recorded them."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, orm.members, model.Member)
        self._history: list[model.HistoryEntry] = []
        self._history_mark = 0

    async def _add(self, aggregate: model.Member) -> None:
        await super()._add(aggregate)
        self._take_history(aggregate)

    async def _save(self, aggregate: model.Member) -> None:
        await super()._save(aggregate)
        self._take_history(aggregate)

    def _take_history(self, member: model.Member) -> None:
        self._history.extend(member.new_history)
        member.new_history.clear()

    def begin_command(self) -> None:
        super().begin_command()
        self._history_mark = len(self._history)

    def discard_command(self) -> None:
        del self._history[self._history_mark :]
        super().discard_command()

    async def flush(self) -> None:
        await super().flush()
        if self._history:
            await self._session.execute(insert(orm.member_history), [
                {name: getattr(e, name) for name in _HISTORY_COLUMNS} for e in self._history])
            self._history.clear()


class SqlAlchemyUnitOfWork(AbstractUnitOfWork):
    """One batch's repositories; the pipeline owns the transaction around it."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.unions: SqlAlchemyRepository[model.Union] = SqlAlchemyRepository(session, orm.unions, model.Union)
        self.members: MemberRepository = MemberRepository(session)
        self.homes: SqlAlchemyRepository[model.Home] = SqlAlchemyRepository(session, orm.homes, model.Home)
        self.stations: StationRepository = StationRepository(session, orm.stations, model.Station)
        self.cadres: SqlAlchemyRepository[model.Cadre] = SqlAlchemyRepository(session, orm.cadres, model.Cadre)
        self._all = (self.unions, self.members, self.homes, self.stations, self.cadres)

    async def preload(self, batch: Iterable[commands.Command]) -> None:
        """Loads everything the batch's commands will look up, a few queries in all."""
        unions: set[str] = set()
        members: set[str] = set()
        for command in batch:
            for name in ("union_id", "parent_id", "to_union_id"):
                if value := getattr(command, name, None):
                    unions.add(value)
            if member_id := getattr(command, "member_id", None):
                members.add(member_id)
        await self.unions.preload(unions)
        await self.members.preload(members)
        await self.cadres.preload(members)
        await self.homes.preload(c.home_id for c in batch if isinstance(c, commands.RegisterHome))
        await self.stations.preload(c.station_id for c in batch if isinstance(c, commands.RegisterStation))

    def begin_command(self) -> None:
        for repository in self._all:
            repository.begin_command()

    def discard_command(self) -> None:
        for repository in self._all:
            repository.discard_command()

    async def flush(self) -> None:
        for repository in self._all:
            await repository.flush()
