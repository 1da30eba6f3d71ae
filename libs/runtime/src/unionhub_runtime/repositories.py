"""A repository of aggregates stored one row each in a table, kept in memory for a batch.

What one command changed, the next command of the batch sees (identity map); everything is
written in a few statements at `flush` (group commit); a rejected command's changes are
taken back by the unit of work's `Journal`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Select, Table, bindparam, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from .database import KEYS, where_in, where_in_keys
from .inserts import InsertsTogether, insert_rows
from .postgres import PostgresStatement
from .unit_of_work import AbstractRepository, Journal, snapshot

A = TypeVar("A")
_BY_KEY: dict[tuple[Table, str], Select[Any]] = {}  # a table's rows of given keys, per dialect


class TableRepository(AbstractRepository[A]):
    """Rows of `table` as aggregates of type `kind` (a dataclass whose fields include the
    table's columns), keyed by the table's primary key."""

    def __init__(self, session: AsyncSession, journal: Journal, table: Table, kind: type[A]) -> None:
        super().__init__()
        self._session, self._journal, self._table, self._kind = session, journal, table, kind
        self._key = next(iter(table.primary_key.columns))
        self._columns = [c.name for c in table.columns]
        self._loaded: dict[str, A | None] = {}  # None: known not to exist
        self._inserts: dict[str, A] = {}
        self._updates: dict[str, A] = {}

    def to_row(self, aggregate: A) -> dict[str, Any]:
        return {name: getattr(aggregate, name) for name in self._columns}

    def from_row(self, row: dict[str, Any]) -> A:
        return self._kind(**row)

    async def preload(self, keys: Iterable[str]) -> None:
        """Loads the aggregates of `keys` (and learns which do not exist) in bulk."""
        wanted = [k for k in set(keys) if k not in self._loaded]
        if not wanted:
            return
        dialect = self._session.get_bind().dialect
        query = _BY_KEY.get((self._table, dialect.name))
        if query is None:
            query = _BY_KEY[self._table, dialect.name] = where_in(select(self._table), self._key, dialect)
        postgres = _postgres_reading(query, self._table, dialect) if dialect.name == "postgresql" else None
        for chunk in where_in_keys(wanted, dialect):
            if postgres is not None:
                rows = [
                    dict(zip(self._columns, row, strict=True))
                    for row in await postgres.rows(self._session, **{KEYS: chunk})
                ]
            else:
                rows = [dict(row) for row in (await self._session.execute(query, {KEYS: chunk})).mappings()]
            found = {str(row[self._key.name]): self.from_row(row) for row in rows}
            for key in chunk:
                self._loaded[key] = found.get(key)

    async def _get(self, key: str) -> A | None:
        if key not in self._loaded:
            await self.preload([key])
        found = self._loaded[key]
        if not self._journal.remembers(self._loaded, key):
            # The handler may change it in place: put back a copy of it as it is now, in the
            # identity map and in the writes pending for it.
            kept = snapshot(found)
            for pending in (self._loaded, self._inserts, self._updates):
                if pending is self._loaded or key in pending:
                    self._journal.remember(pending, key, lambda _: kept)
        return found

    async def _add(self, aggregate: A) -> None:
        key = str(getattr(aggregate, self._key.name))
        self._journal.set(self._loaded, key, aggregate)
        self._journal.set(self._inserts, key, aggregate)

    async def _save(self, aggregate: A) -> None:
        key = str(getattr(aggregate, self._key.name))
        # Still to be inserted: its final state goes in with the insert.
        self._journal.set(self._inserts if key in self._inserts else self._updates, key, aggregate)

    async def flush(self, together: InsertsTogether | None = None) -> None:
        """Writes the batch's inserts and updates; the inserts gathered in `together` (when
        given) if no update follows them, the updates after what it gathered before."""
        if self._updates and together is not None:
            await together.run()
            together = None
        if self._inserts:
            await insert_rows(self._session, self._table, [self.to_row(a) for a in self._inserts.values()], together)
        if self._updates:
            others = [name for name in self._columns if name != self._key.name]
            statement = (
                update(self._table)
                .where(self._key == bindparam("_key"))
                .values({name: bindparam(name) for name in others})
            )
            rows = [
                {name: row[name] for name in others} | {"_key": key}
                for key, row in ((k, self.to_row(a)) for k, a in self._updates.items())
            ]
            await self._session.execute(statement, rows)
        self._inserts.clear()
        self._updates.clear()


_POSTGRES_READING: dict[Table, PostgresStatement | None] = {}


def _postgres_reading(query: Select[Any], table: Table, dialect: Dialect) -> PostgresStatement | None:
    """`query` (`table`'s rows) for `postgres_fetch`; None when SQLAlchemy must read its rows
    (a number column: `PostgresStatement.readers`). Decided once a table."""
    if table not in _POSTGRES_READING:
        statement = PostgresStatement.of(query, dialect)
        _POSTGRES_READING[table] = statement if statement.readers is not None else None
    return _POSTGRES_READING[table]


def dataclass_rows(entries: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows of dataclass instances, one column a field."""
    return [{f.name: getattr(entry, f.name) for f in fields(entry)} for entry in entries]
