"""A repository of aggregates stored one row each in a table, kept in memory for a batch.

What one command changed, the next command of the batch sees (identity map); everything is
written in a few statements at `flush` (group commit); a rejected command's changes are
taken back by the unit of work's `Journal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Enum,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from .database import KEYS, where_in, where_in_keys
from .inserts import InsertsTogether, insert_rows, stored_type
from .postgres import PostgresStatement
from .reads import ReadPart, ReadsTogether
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
        wanted = self._not_loaded(keys)
        if not wanted:
            return
        dialect = self._session.get_bind().dialect
        query = _by_key(self._table, dialect)
        postgres = _postgres_reading(query, self._table, dialect) if dialect.name == "postgresql" else None
        for chunk in where_in_keys(wanted, dialect):
            if postgres is not None:
                rows = [
                    dict(zip(self._columns, row, strict=True))
                    for row in await postgres.rows(self._session, **{KEYS: chunk})
                ]
            else:
                rows = [dict(row) for row in (await self._session.execute(query, {KEYS: chunk})).mappings()]
            self._learn(chunk, rows)

    def _lookup(self) -> _TableLookup | None:
        """How `preload_together` reads this repository's rows, or None: then by its `preload`
        (which a subclass may have made its own)."""
        if type(self).preload is not TableRepository.preload:
            return None
        return _table_lookup(self._table, self._session.get_bind().dialect)

    def _not_loaded(self, keys: Iterable[str]) -> list[str]:
        return [k for k in set(keys) if k not in self._loaded]

    def _learn(self, keys: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
        """The rows found of `keys`: the others do not exist."""
        found = {str(row[self._key.name]): self.from_row(row) for row in rows}
        for key in keys:
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


async def preload_together(
    *wanted: tuple[TableRepository[Any], Iterable[str]], reads: ReadsTogether | None = None
) -> None:
    """The preloads of several repositories of one session: on PostgreSQL in one statement,
    each table's rows of its keys an array of records, a round trip a table fewer (a batch of
    enrolments looks up unions, members and cadres, each a round trip its batch waited for:
    bench/README.md, round eleven). Every table `_TableLookup` can read is in the statement,
    with no keys if none is missing, so that it is one statement text (prepared once a
    connection) whichever keys a batch has; the others, and every table on another database,
    one preload each. With the batch's `reads` (of the same session), their statement is this one."""
    sessions = {id(repository._session) for repository, _ in wanted}
    if len(sessions) > 1 or (reads is not None and sessions and sessions != {id(reads.session)}):
        raise ValueError("preload_together loads the repositories of one session")
    together: list[tuple[TableRepository[Any], list[str], _TableLookup]] = []
    for repository, keys in wanted:
        missing = repository._not_loaded(keys)
        lookup = repository._lookup()
        if lookup is None:
            await repository.preload(missing)
        else:
            together.append((repository, missing, lookup))
    if not any(missing for _, missing, _ in together):
        return
    if reads is None or reads.ran:  # run already (a second preload of the batch): a statement of its own
        reads = ReadsTogether(together[0][0]._session)
    found = await reads.run([(lookup.part, [missing]) for _, missing, lookup in together])
    for (repository, missing, lookup), records in zip(together, found, strict=True):
        repository._learn(missing, map(lookup.row, records))


class _TableLookup:
    """A table's rows of given keys as one array of records (`preload_together`), read as
    `TableRepository.preload` reads them: every column, in order, through SQLAlchemy's reading
    of its type."""

    def __init__(self, table: Table, reading: PostgresStatement, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        name = dialect.identifier_preparer.format_table(table)
        key = next(iter(table.primary_key.columns))
        self._columns = [c.name for c in table.columns]
        self._reading = reading
        listed = ", ".join(f"{name}.{quote(column)}" for column in self._columns)
        # The keys' type as `where_in` casts them: no length (a cast to varchar(n) would cut a
        # longer key to one that matches).
        self.part = ReadPart(
            (
                f"ARRAY(SELECT ROW({listed}) FROM {name} JOIN unnest(CAST({{0}} AS VARCHAR[])) "
                f"AS unionhub_wanted (unionhub_key) ON {name}.{quote(key.name)} = unionhub_wanted.unionhub_key)",
            ),
            1,
        )  # the array of the rows whose key is in the parameter

    def row(self, record: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self._columns, self._reading.read(record), strict=True))


# What asyncpg decodes in a record as in a column: types whose codec it has built in. It looks
# up other types (an enum, an array, a composite, an extension's) only for a statement's
# parameters and columns, not for a record's fields, whose values it would then fail to
# decode. (A column must also be of the type itself in the database, not a domain over it:
# a record names the domain.)
_RECORD_FIELD_TYPES = (String, Integer, Boolean, Date, DateTime, LargeBinary)
_TABLE_LOOKUPS: dict[tuple[Table, str], _TableLookup | None] = {}


def _table_lookup(table: Table, dialect: Dialect) -> _TableLookup | None:
    """`table`'s lookup on PostgreSQL, or None: on another database, for a key that is not
    text, a column of another type than `_RECORD_FIELD_TYPES`, or a table whose rows
    SQLAlchemy must read (`_postgres_reading`)."""
    if (table, dialect.name) not in _TABLE_LOOKUPS:
        lookup = None
        key = next(iter(table.primary_key.columns))
        recordable = all(
            isinstance(kind := stored_type(column.type), _RECORD_FIELD_TYPES) and not isinstance(kind, Enum)
            for column in table.columns
        )
        if dialect.name == "postgresql" and isinstance(key.type, String) and recordable:
            reading = _postgres_reading(_by_key(table, dialect), table, dialect)
            if reading is not None:
                lookup = _TableLookup(table, reading, dialect)
        _TABLE_LOOKUPS[table, dialect.name] = lookup
    return _TABLE_LOOKUPS[table, dialect.name]


def _by_key(table: Table, dialect: Dialect) -> Select[Any]:
    """`table`'s rows of the keys given as `KEYS` (its first primary-key column's), built once."""
    query = _BY_KEY.get((table, dialect.name))
    if query is None:
        key = next(iter(table.primary_key.columns))
        query = _BY_KEY[table, dialect.name] = where_in(select(table), key, dialect)
    return query


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
