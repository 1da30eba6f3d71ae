"""`inserts.insert_rows` writes what an insert would, on both databases: one `unnest`
statement on PostgreSQL where the columns allow it, an executemany where they do not (a
native enum, a Python-side default on a column left out), ids drawn in the rows' order."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, StatementError

from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.inserts import _unnest_insert, insert_rows


class Colour(enum.Enum):
    red = "red"
    blue = "blue"


metadata = MetaData()
plain = Table(
    "plain_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(20), nullable=False),
    Column("size", BigInteger),
    Column("blob", LargeBinary),
    Column("at", UtcInstant),
)
priced = Table(
    "priced_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("price", Numeric(20, 2), nullable=False),
)
awkward = Table(
    "awkward_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("colour", Enum(Colour, name="colour"), nullable=False),
    Column("note", String(20), nullable=False, default="none given"),
)


async def test_rows_are_written_as_an_insert_writes_them(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        shanghai = timezone(timedelta(hours=8))
        rows = [
            {
                "name": f"n-{i}",
                "size": 2**40 + i,
                "blob": bytes([i % 256]),
                "at": datetime(2018, 5, 31, 23, 30, tzinfo=shanghai),
            }
            for i in range(300)
        ] + [{"name": "nulls", "size": None, "blob": None, "at": None}]
        async with session_factory(engine)() as session, session.begin():
            await insert_rows(session, plain, rows)
            await insert_rows(session, awkward, [{"colour": Colour.red}, {"colour": Colour.blue}])
        async with engine.connect() as connection:
            written = (await connection.execute(select(plain).order_by(plain.c.id))).all()
            odd = (await connection.execute(select(awkward.c.colour, awkward.c.note).order_by(awkward.c.id))).all()
        assert [r.name for r in written] == [r["name"] for r in rows]  # ids in the rows' order
        assert written[0].at == datetime(2018, 5, 31, 15, 30, tzinfo=UTC) and written[-1].at is None
        assert (written[7].size, written[7].blob) == (2**40 + 7, b"\x07")
        assert odd == [(Colour.red, "none given"), (Colour.blue, "none given")]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)  # SQLite keeps no exact decimals
async def test_a_decimal_is_written_exactly(database_url: str) -> None:
    """As SQLAlchemy's asyncpg dialect writes it: passed as a `Decimal`, not through a float
    (the generic `Numeric`'s processing on a dialect without native decimals)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        prices = [Decimal("12345678901234567.89"), Decimal("0.10")]
        async with session_factory(engine)() as session, session.begin():
            await insert_rows(session, priced, [{"price": price} for price in prices])
        async with engine.connect() as connection:
            written = (await connection.execute(select(priced.c.price).order_by(priced.c.id))).scalars().all()
    finally:
        await engine.dispose()
    assert written == prices


every_kind = Table(
    "every_kind_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("on", String(40)),  # a reserved word
    Column("MixedCase", Text),
    Column("count", BigInteger),
    Column("small", Integer),
    Column("flag", Boolean),
    Column("day", Date),
    Column("at", UtcInstant),
    Column("stamp", DateTime(timezone=True)),
    Column("wall", DateTime),
    Column("price", Numeric(20, 2)),
    Column("blob", LargeBinary),
)
words_only = Table(  # every column one JSON carries, none processed: the rows go to orjson as they are
    "words_only_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("word", String(40), nullable=False),
    Column("day", Date),
    Column("n", Integer),
)
NOON_EAST = timezone(timedelta(hours=8))
TRICKY_TEXTS = [
    'a "quoted" word',
    "back\\slash",
    "tab\there\nnewline",
    "轧钢 · 班组",
    "emoji 🚀",
    "comma, and ; semicolon",
    "",
    " ",
]


def every_kind_rows() -> list[dict[str, Any]]:
    rows = []
    name = {
        column.name: column.name for column in every_kind.columns
    }  # SQLAlchemy's `str` subclass, as a repository's rows have
    for i, words in enumerate(TRICKY_TEXTS):
        rows.append(
            {
                name["on"]: words,
                name["MixedCase"]: words * 3,
                name["count"]: [2**63 - 1, -(2**63), 0, 1][i % 4],
                name["small"]: [2**31 - 1, -(2**31), 7, None][i % 4],
                name["flag"]: [True, False, None][i % 3],
                name["day"]: [date(1, 1, 1), date(9999, 12, 31), date(2018, 6, 1), None][i % 4],
                name["at"]: datetime(2018, 5, 31, 23, 59, 59, 999999, tzinfo=NOON_EAST) + timedelta(microseconds=i),
                name["stamp"]: [datetime(2020, 1, 1, 12), datetime(2020, 1, 1, 12, tzinfo=NOON_EAST), None][i % 3],
                name["wall"]: [datetime(2020, 1, 1, 12, 0, 0, 1), datetime(1, 1, 1), None][i % 3],
                name["price"]: [Decimal("12345678901234567.89"), Decimal("-0.10"), None][i % 3],
                name["blob"]: [b"\x00\xff", b"", None][i % 3],
            }
        )
    return rows


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_every_kind_of_column_reads_back_as_an_insert_wrote_it(database_url: str) -> None:
    """Text, integers, booleans, dates and instants go to PostgreSQL as one JSON text, the
    rest as arrays: what each row reads back is what SQLAlchemy's insert of it reads back."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        rows = every_kind_rows()
        assert _unnest_insert(every_kind, tuple(rows[0]), engine.dialect) is not None  # not an executemany
        async with session_factory(engine)() as session, session.begin():
            # A naive datetime for a `timestamptz` is UTC to asyncpg, whatever the session's zone.
            await session.execute(text("SET LOCAL timezone = 'Asia/Shanghai'"))
            await insert_rows(session, every_kind, rows)
            await session.execute(insert(every_kind), rows)
            word, day, n = (words_only.c[name].name for name in ("word", "day", "n"))  # `str` subclasses
            await insert_rows(
                session, words_only, [{word: w, day: date(2018, 6, 1), n: i} for i, w in enumerate(TRICKY_TEXTS)]
            )
        async with engine.connect() as connection:
            written = (await connection.execute(select(every_kind).order_by(every_kind.c.id))).all()
            words = (await connection.execute(select(words_only).order_by(words_only.c.id))).all()
    finally:
        await engine.dispose()
    by_rows, by_insert = written[: len(rows)], written[len(rows) :]
    assert [r[1:] for r in by_rows] == [r[1:] for r in by_insert]
    assert [r.on for r in by_rows] == TRICKY_TEXTS  # ids in the rows' order
    assert [tuple(r[1:]) for r in words] == [(w, date(2018, 6, 1), i) for i, w in enumerate(TRICKY_TEXTS)]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("column", "value"),
    [("on", "x" * 41), ("on", "nul \x00 inside"), ("on", "lone \ud800"), ("small", 2**31), ("count", 2**63)],
)
async def test_a_value_an_insert_refuses_is_refused(database_url: str, column: str, value: object) -> None:
    """Too long for its `varchar(n)` (not cut), a NUL or a lone surrogate in text, an integer out
    of its column's range: refused, and nothing written."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        for write in (
            lambda s: insert_rows(s, every_kind, [{column: value}]),
            lambda s: s.execute(insert(every_kind), [{column: value}]),
        ):
            with pytest.raises((DBAPIError, StatementError, TypeError)):  # TypeError: orjson, for the lone surrogate
                async with session_factory(engine)() as session, session.begin():
                    await write(session)
        async with engine.connect() as connection:
            assert (await connection.execute(select(func.count()).select_from(every_kind))).scalar() == 0
    finally:
        await engine.dispose()
