"""`insert_rows`: a batch's rows in one statement on PostgreSQL, an executemany elsewhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Date, DateTime, Enum, Integer, LargeBinary, Numeric, String, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator

from .postgres import postgres_fetch


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Inserts `rows` (mappings with the same keys, in order: ids are drawn in it) in the
    caller's transaction. On PostgreSQL one statement fed a few parameters (`_UnnestInsert`)
    instead of one a value, as an executemany has; elsewhere an executemany."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        await session.execute(insert(table), rows)
        return
    names = tuple(rows[0])
    unnest = _unnest_insert(table, names, dialect)
    if unnest is None or any(row.keys() != rows[0].keys() for row in rows):
        await session.execute(insert(table), rows)  # what the arrays cannot carry as written
        return
    await postgres_fetch(session, unnest.statement, *unnest.parameters(rows))


class _UnnestInsert:
    """One `INSERT … SELECT` of a batch of rows on PostgreSQL, and how to make its parameters.

    The columns JSON carries as PostgreSQL reads them (text, integers, booleans, dates,
    instants) go as one JSON text, split by `json_to_recordset`: asyncpg spent 4–5 µs of the
    event loop a row encoding them as arrays (an abstract-class check per element), orjson
    under 1 µs. The others (bytes, decimals, JSON values) go as one array each,
    zipped with it by `ROWS FROM`; `WITH ORDINALITY … ORDER BY` keeps the rows' order (ids
    are drawn in it)."""

    def __init__(self, table: Table, names: tuple[str, ...], dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        columns = [table.c[name] for name in names]
        # The dialect's own type's processing, as SQLAlchemy's insert applies it (the generic
        # `Numeric`'s would pass a `Decimal` through a float on asyncpg).
        processors = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
        self._in_json = [name for name, c in zip(names, columns, strict=True) if _travels_as_json(c.type)]
        self._in_arrays = [name for name in names if name not in self._in_json]
        self._json_processors = [(n, p) for n in self._in_json if (p := processors[n]) is not None]
        self._array_processors = [processors[n] for n in self._in_arrays]
        sources = []
        if self._in_json:
            # No length on text: a cast to varchar(n) would cut a longer value, where the insert refuses it.
            defined = ", ".join(
                f"{quote(c.name)} {_cast_name(c.type, dialect)}" for c in columns if c.name in self._in_json
            )
            sources.append(f"json_to_recordset(CAST($1 AS JSON)) AS ({defined})")
        first = 2 if self._in_json else 1
        sources += [
            f"unnest(CAST(${first + i} AS {_cast_name(table.c[name].type, dialect)}[]))"
            for i, name in enumerate(self._in_arrays)
        ]
        listed = ", ".join(quote(name) for name in names)
        aliases = ", ".join(quote(name) for name in (*self._in_json, *self._in_arrays))
        table_name = dialect.identifier_preparer.format_table(table)
        self.statement = (
            f"INSERT INTO {table_name} ({listed}) SELECT {listed} FROM ROWS FROM ({', '.join(sources)}) "
            f"WITH ORDINALITY AS r({aliases}, unnest_ordinal) ORDER BY unnest_ordinal"
        )

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        parameters: list[Any] = []
        if self._in_json:
            records: Sequence[Mapping[str, Any]] = rows  # as they are (orjson refuses a row not a dict)
            if len(self._in_json) < len(rows[0]) or self._json_processors or type(rows[0]) is not dict:
                records = [self._json_record(row) for row in rows]
            parameters.append(orjson.dumps(records, option=_JSON_ROWS).decode())
        for name, processor in zip(self._in_arrays, self._array_processors, strict=True):
            values = [row[name] for row in rows]
            parameters.append(values if processor is None else [processor(v) for v in values])
        return parameters

    def _json_record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        record = {name: row[name] for name in self._in_json}
        for name, process in self._json_processors:
            record[name] = process(record[name])
        return record


# A naive datetime as UTC, as asyncpg reads one for a `timestamptz`; keys that are a `str`
# subclass (SQLAlchemy's names of columns) as strings.
_JSON_ROWS = orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _travels_as_json(kind: Any) -> bool:
    """Whether a JSON value of a column's values reads back as the value itself: text,
    integers, booleans, dates, and instants (a `timestamp` without time zone is left to the
    arrays, which do not turn an offset into one)."""
    impl = kind.impl_instance if isinstance(kind, TypeDecorator) else kind
    if isinstance(impl, DateTime):
        return bool(impl.timezone)
    return isinstance(impl, String | Integer | Boolean | Date)


def _cast_name(kind: Any, dialect: Dialect) -> str:
    impl = kind.impl_instance if isinstance(kind, TypeDecorator) else kind
    return "VARCHAR" if isinstance(impl, String) else str(kind.compile(dialect=dialect))


_UNNEST_INSERTS: dict[tuple[Table, tuple[str, ...], str], _UnnestInsert | None] = {}


_UNNEST_TYPES = (String, Integer, Numeric, Boolean, Date, DateTime, LargeBinary, JSON)


def _unnest_fits(table: Table, names: tuple[str, ...]) -> bool:
    """Whether an `unnest` insert writes `names` of `table` as an insert would: plain column
    types only (an enum is a String to SQLAlchemy but not to PostgreSQL, an ARRAY column would
    be flattened), and no Python-side default on a column left out (a text statement does
    not apply it)."""
    for column in table.columns:
        if column.name not in names:
            if column.default is not None:
                return False
            continue
        kind = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
        if isinstance(kind, Enum) or not isinstance(kind, _UNNEST_TYPES):
            return False
    return True


def _unnest_insert(table: Table, names: tuple[str, ...], dialect: Dialect) -> _UnnestInsert | None:
    """The insert of `names` of `table`, or None when the columns do not fit (`_unnest_fits`).
    Decided once per table and columns."""
    key = (table, names, dialect.name)
    if key not in _UNNEST_INSERTS:
        _UNNEST_INSERTS[key] = _UnnestInsert(table, names, dialect) if _unnest_fits(table, names) else None
    return _UNNEST_INSERTS[key]
