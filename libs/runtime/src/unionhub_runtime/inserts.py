"""`insert_rows`: a batch's rows in one statement on PostgreSQL, an executemany elsewhere;
`InsertsTogether`: the rows of several tables in one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Date, DateTime, Enum, Integer, LargeBinary, Numeric, String, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator

from .postgres import postgres_fetch


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    together: InsertsTogether | None = None,
) -> None:
    """Inserts `rows` (mappings with the same keys, in order: ids are drawn in it) in the
    caller's transaction, or gathers them in `together` when given. On PostgreSQL one
    statement fed a few parameters (`_UnnestInsert`) instead of one a value, as an executemany
    has; elsewhere an executemany."""
    if together is not None:
        await together.add(table, rows)
        return
    if not rows:
        return
    one = _one_statement(session, table, rows)
    if one is None:
        await session.execute(insert(table), rows)
        return
    statement, parameters = one
    await postgres_fetch(session, statement, *parameters)


def _one_statement(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]], first: int = 1
) -> tuple[str, list[Any]] | None:
    """The `_UnnestInsert` of `rows` (its parameters numbered from `first`), or None where the
    insert is an executemany: on another database, or for what the arrays cannot carry as
    written (columns `_unnest_fits` refuses, rows with other keys)."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return None
    unnest = _unnest_insert(table, tuple(rows[0]), dialect)
    if unnest is None or any(row.keys() != rows[0].keys() for row in rows):
        return None
    return unnest.arguments(rows, first)


class InsertsTogether:
    """Inserts into several tables gathered, to go to PostgreSQL as one statement when `run`:
    a round trip a table fewer. A batch of enrolments writes members, their history and the
    outbox; each insert on its own took a round trip, which a small batch waits for
    (bench/README.md, round eleven).

    Used as `async with InsertsTogether(session) as together:`, which runs what is left at the
    end (not after an error: the transaction is lost anyway). What is added is written only
    at `run`: nothing may read, change or rely on those rows before; a writer that must come
    after them runs it first (`TableRepository.flush` before its updates). Rows of one table
    keep their order (ids are drawn in it), and the tables are written in the order added
    (`run`); a table added again runs what was gathered before it. Where one statement cannot
    carry an insert (another database, `insert_rows`' executemany), what was gathered runs,
    then the insert at once. All of it within the savepoint it was begun in."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._savepoint = session.sync_session.get_nested_transaction()
        self._tables: list[Table] = []
        self._statements: list[str] = []
        self._parameters: list[Any] = []

    async def __aenter__(self) -> InsertsTogether:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            await self.run()

    async def add(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        self._check_savepoint()
        if not rows:
            return
        if any(added is table for added in self._tables):
            await self.run()
        one = _one_statement(self._session, table, rows, first=len(self._parameters) + 1)
        if one is None:
            await self.run()
            await self._session.execute(insert(table), rows)
            return
        statement, parameters = one
        self._tables.append(table)
        self._statements.append(statement)
        self._parameters += parameters

    async def run(self) -> None:
        """Writes what was added, in the caller's transaction, in the order added: PostgreSQL
        runs a statement's main part first, then the data-modifying `WITH`s nothing reads from
        the last written to the first (its executor's order since 9.1; the documentation leaves
        it open), so the first added is the main part and the others follow it reversed. In
        the order of one statement a table, the locks and the waits for another transaction's
        unique keys come in the order every other writer takes them."""
        self._check_savepoint()
        if not self._statements:
            return
        main, *others = self._statements
        parts = ", ".join(f"unionhub_insert_{i} AS ({statement})" for i, statement in enumerate(reversed(others)))
        statement = f"WITH {parts} {main}" if others else main
        parameters = self._parameters
        self._tables, self._statements, self._parameters = [], [], []
        await postgres_fetch(self._session, statement, *parameters)

    def _check_savepoint(self) -> None:
        # Rows gathered in a savepoint and run after its rollback would be written anyway;
        # rows gathered before one and run in it, taken back with it.
        if self._session.sync_session.get_nested_transaction() is not self._savepoint:
            raise RuntimeError("InsertsTogether is used within the savepoint it was begun in")


class _UnnestInsert:
    """One `INSERT … SELECT` of a batch of rows on PostgreSQL, and how to make its arguments.

    The columns JSON carries as PostgreSQL reads them (text, integers, booleans, dates,
    instants) go as one JSON text, split by `json_to_recordset`: asyncpg spent 4–5 µs of the
    event loop a row encoding them as arrays (an abstract-class check per element), orjson
    under 1 µs. The others (bytes, decimals, JSON values) go as one array each, zipped with it
    by `ROWS FROM`; `WITH ORDINALITY … ORDER BY` keeps the rows' order (ids are drawn in it).

    JSON is laxer than asyncpg (PostgreSQL reads `"12"` into an integer, orjson writes NaN as
    null): a batch with a value not exactly of its column's type (`_json_value`; an instant
    not in UTC, a naive one) goes all as arrays, so asyncpg writes or refuses it as before."""

    def __init__(self, table: Table, names: tuple[str, ...], dialect: Dialect, *, with_json: bool = True) -> None:
        quote = dialect.identifier_preparer.quote
        columns = [table.c[name] for name in names]
        # The dialect's own type's processing, as SQLAlchemy's insert applies it (the generic
        # `Numeric`'s would pass a `Decimal` through a float on asyncpg).
        processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
        kinds = [_json_value(c.type) if with_json else None for c in columns]
        self._in_json = [(n, p, k) for n, p, k in zip(names, processors, kinds, strict=True) if k is not None]
        self._in_arrays = [(n, p) for n, p, k in zip(names, processors, kinds, strict=True) if k is None]
        # Rows given to orjson as they are: every column in the JSON, none processed.
        self._rows_as_they_are = len(self._in_json) == len(names) and all(p is None for _, p, _ in self._in_json)
        self._all_arrays = _UnnestInsert(table, names, dialect, with_json=False) if self._in_json else None
        # The sources, each taking the next parameter (numbered between the two texts, not by
        # `str.format`: a quoted name may hold braces): the JSON text's, then the arrays'.
        self._sources: list[tuple[str, str]] = []
        if self._in_json:
            # No length on text: a cast to varchar(n) would cut a longer value, where the insert refuses it.
            defined = ", ".join(
                f"{quote(name)} {_cast_name(table.c[name].type, dialect)}" for name, _, _ in self._in_json
            )
            self._sources.append(("json_to_recordset(CAST($", f" AS JSON)) AS ({defined})"))
        self._sources += [
            ("unnest(CAST($", f" AS {_cast_name(table.c[name].type, dialect)}[]))") for name, _ in self._in_arrays
        ]
        listed = ", ".join(quote(name) for name in names)
        aliases = ", ".join(
            quote(name) for name in (*(n for n, _, _ in self._in_json), *(n for n, _ in self._in_arrays))
        )
        table_name = dialect.identifier_preparer.format_table(table)
        self._head = f"INSERT INTO {table_name} ({listed}) SELECT {listed} FROM ROWS FROM ("
        self._tail = f") WITH ORDINALITY AS r({aliases}, unnest_ordinal) ORDER BY unnest_ordinal"
        self._statements: dict[int, str] = {}

    def statement(self, first: int = 1) -> str:
        """The statement, its parameters numbered from `first` (`$first`, …)."""
        if first not in self._statements:
            sources = ", ".join(f"{before}{first + i}{after}" for i, (before, after) in enumerate(self._sources))
            self._statements[first] = self._head + sources + self._tail
        return self._statements[first]

    def arguments(self, rows: Sequence[Mapping[str, Any]], first: int = 1) -> tuple[str, list[Any]]:
        """The statement for `rows` and its parameters (numbered from `first`)."""
        if self._all_arrays is None:
            return self.statement(first), self._arrays(rows)
        values: dict[str, list[Any]] = {}
        for name, process, accepted in self._in_json:
            column = list(map(itemgetter(name), rows))
            if process is not None:
                column = [process(v) for v in column]
            if not set(map(type, column)) <= accepted or not _exact_in_json(column, accepted):
                return self._all_arrays.arguments(rows, first)
            values[name] = column
        records: Sequence[Mapping[str, Any]] = rows
        if not (self._rows_as_they_are and set(map(type, rows)) == {dict}):  # orjson takes dicts only
            records = [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]
        json_text = orjson.dumps(records, option=orjson.OPT_NON_STR_KEYS).decode()
        return self.statement(first), [json_text, *self._arrays(rows)]

    def _arrays(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        arrays = []
        for name, process in self._in_arrays:
            column = list(map(itemgetter(name), rows))
            arrays.append(column if process is None else [process(v) for v in column])
        return arrays


_NONE = type(None)


def _json_value(kind: Any) -> frozenset[type] | None:
    """The types of the values of a column JSON carries exactly (PostgreSQL reads each back as
    asyncpg writes it), or None for a column left to the arrays. Exact types: a `bool` is an
    `int` to asyncpg but `true` in JSON, a `datetime` is a `date`. An instant must also be in
    UTC (as `UtcInstant` gives it): orjson rounds an offset to the minute, and asyncpg reads a
    naive one in the process's zone (`_exact_in_json`)."""
    impl = stored_type(kind)
    if isinstance(impl, DateTime):
        return frozenset({datetime, _NONE}) if impl.timezone else None  # `timestamp`: no offset to keep
    for column_type, value_type in ((String, str), (Boolean, bool), (Integer, int), (Date, date)):
        if isinstance(impl, column_type):
            return frozenset({value_type, _NONE})
    return None


def _exact_in_json(column: list[Any], accepted: frozenset[type]) -> bool:
    """Whether the dates or instants of a column read back from JSON as asyncpg would write
    them: instants in UTC, and none of the extremes asyncpg writes as `-infinity`/`infinity`."""
    if datetime in accepted:
        if _FIRST_INSTANT in column or _LAST_INSTANT in column:
            return False
        return all(v is None or v.tzinfo is UTC for v in column)
    return not (date in accepted and (date.min in column or date.max in column))


_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _cast_name(kind: Any, dialect: Dialect) -> str:
    return "VARCHAR" if isinstance(stored_type(kind), String) else str(kind.compile(dialect=dialect))


def stored_type(kind: Any) -> Any:
    """The type a column's values are stored as (a `TypeDecorator`'s underlying one)."""
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


_UNNEST_INSERTS: dict[tuple[Table, tuple[str, ...], str], _UnnestInsert | None] = {}


_UNNEST_TYPES = (String, Integer, Numeric, Boolean, Date, DateTime, LargeBinary, JSON)


def _unnest_fits(table: Table, names: tuple[str, ...], dialect: Dialect) -> bool:
    """Whether an `unnest` insert writes `names` of `table` as an insert would: plain column
    types only (an enum is a String to SQLAlchemy but not to PostgreSQL, an ARRAY column would
    be flattened), no Python-side default on a column left out (a text statement does not
    apply it), and names as the statement spells them: a column's key its name, no name
    PostgreSQL would cut (`json_to_recordset` reads a key it does not find as null)."""
    for column in table.columns:
        if column.key != column.name or len(column.name.encode()) > dialect.max_identifier_length:
            return False
        if column.name not in names:
            if column.default is not None:
                return False
            continue
        kind = stored_type(column.type)
        if isinstance(kind, Enum) or not isinstance(kind, _UNNEST_TYPES):
            return False
    return True


def _unnest_insert(table: Table, names: tuple[str, ...], dialect: Dialect) -> _UnnestInsert | None:
    """The insert of `names` of `table`, or None when the columns do not fit (`_unnest_fits`).
    Decided once per table and columns."""
    key = (table, names, dialect.name)
    if key not in _UNNEST_INSERTS:
        _UNNEST_INSERTS[key] = _UnnestInsert(table, names, dialect) if _unnest_fits(table, names, dialect) else None
    return _UNNEST_INSERTS[key]
