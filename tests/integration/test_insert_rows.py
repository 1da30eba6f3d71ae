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


def every_kind_rows(stamps: list[datetime | None], days: list[date | None]) -> list[dict[str, Any]]:
    name = {column.name: column.name for column in every_kind.columns}  # `str` subclasses, as a repository's rows have
    return [
        {
            name["on"]: words,
            name["MixedCase"]: words * 3,
            name["count"]: [2**63 - 1, -(2**63), 0, 1][i % 4],
            name["small"]: [2**31 - 1, -(2**31), 7, None][i % 4],
            name["flag"]: [True, False, None][i % 3],
            name["day"]: days[i % len(days)],
            name["at"]: datetime(2018, 5, 31, 23, 59, 59, 999999, tzinfo=NOON_EAST) + timedelta(microseconds=i),
            name["stamp"]: stamps[i % len(stamps)],
            name["wall"]: [datetime(2020, 1, 1, 12, 0, 0, 1), datetime(1, 1, 1), None][i % 3],
            name["price"]: [Decimal("12345678901234567.89"), Decimal("-0.10"), None][i % 3],
            name["blob"]: [b"\x00\xff", b"", None][i % 3],
        }
        for i, words in enumerate(TRICKY_TEXTS)
    ]


IN_UTC = [datetime(2020, 1, 1, 12, 0, 0, 1, tzinfo=UTC), datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC), None]
DAYS = [date(1, 1, 2), date(9999, 12, 30), date(2018, 6, 1), None]
# What JSON would not carry exactly: naive (asyncpg reads it in the process's zone), an offset
# with seconds (orjson rounds it to the minute); the first and last instants and days, which
# asyncpg writes as `-infinity` and `infinity`.
NOT_IN_UTC = [datetime(2020, 1, 1, 12), datetime(2020, 1, 1, 12, tzinfo=timezone(timedelta(hours=8, seconds=30))), None]
EXTREMES = [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC), None]
EXTREME_DAYS = [date.min, date.max, date(2018, 6, 1), None]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("stamps", "days", "as_json"),
    [(IN_UTC, DAYS, True), (NOT_IN_UTC, DAYS, False), (EXTREMES, DAYS, False), (IN_UTC, EXTREME_DAYS, False)],
)
async def test_every_kind_of_column_reads_back_as_an_insert_wrote_it(
    database_url: str, stamps: list[datetime | None], days: list[date | None], as_json: bool
) -> None:
    """Text, integers, booleans, dates and instants in UTC go to PostgreSQL as one JSON text,
    the rest as arrays, and a batch with a value JSON would not carry exactly all as arrays:
    what each row reads back is what SQLAlchemy's insert of it reads back."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        rows = every_kind_rows(stamps, days)
        unnest = _unnest_insert(every_kind, tuple(rows[0]), engine.dialect)
        assert unnest is not None  # not an executemany
        assert ("json_to_recordset" in unnest.arguments(rows)[0]) is as_json
        async with session_factory(engine)() as session, session.begin():
            await session.execute(text("SET LOCAL timezone = 'Asia/Shanghai'"))  # not the instants' zone
            await insert_rows(session, every_kind, rows)
            await session.execute(insert(every_kind), rows)
            word, day, n = (words_only.c[name].name for name in ("word", "day", "n"))
            await insert_rows(
                session, words_only, [{word: w, day: date(2018, 6, 1), n: i} for i, w in enumerate(TRICKY_TEXTS)]
            )
        async with engine.connect() as connection:
            written = (await connection.execute(select(every_kind).order_by(every_kind.c.id))).all()
            # As PostgreSQL keeps them: asyncpg reads `infinity` back as the largest date, too.
            stored = (
                await connection.execute(text("SELECT CAST(t AS text) FROM every_kind_rows t ORDER BY id"))
            ).scalars()
            words = (await connection.execute(select(words_only).order_by(words_only.c.id))).all()
    finally:
        await engine.dispose()
    by_rows, by_insert = written[: len(rows)], written[len(rows) :]
    assert [r[1:] for r in by_rows] == [r[1:] for r in by_insert]
    kept = [row.split(",", 1)[1] for row in stored]  # the id left out
    assert kept[: len(rows)] == kept[len(rows) :]
    assert [r.on for r in by_rows] == TRICKY_TEXTS  # ids in the rows' order
    assert [tuple(r[1:]) for r in words] == [(w, date(2018, 6, 1), i) for i, w in enumerate(TRICKY_TEXTS)]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_value_of_another_type_is_written_as_asyncpg_writes_it(database_url: str) -> None:
    """JSON would turn `true` in an integer column into an error and a `Decimal` into a
    `TypeError`, where asyncpg writes 1 and 3: such a batch goes as arrays."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        rows: list[dict[str, Any]] = [{"small": True, "count": Decimal(3)}, {"small": 2, "count": 4}]
        async with session_factory(engine)() as session, session.begin():
            await insert_rows(session, every_kind, rows)
        async with engine.connect() as connection:
            written = (await connection.execute(select(every_kind.c.small, every_kind.c.count))).all()
    finally:
        await engine.dispose()
    assert sorted(written) == [(1, 3), (2, 4)]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("on", "x" * 41),
        ("on", "nul \x00 inside"),
        ("on", "lone \ud800"),
        ("on", 12),  # JSON would write "12"
        ("on", float("nan")),  # ... and NaN as null
        ("small", "12"),  # PostgreSQL reads the text "12" into an integer
        ("small", 2**31),
        ("count", 2**63),
        ("day", "2020-01-01"),  # ... and a date's text into a date
    ],
)
async def test_a_value_an_insert_refuses_is_refused(database_url: str, column: str, value: object) -> None:
    """Too long for its `varchar(n)` (not cut), a NUL or a lone surrogate in text, an integer out
    of its column's range, a value of another type: refused, and nothing written."""
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


keyed = Table(
    "keyed_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day_on", Date, key="day"),  # rows name it by its key, the statement by its name
)


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_column_whose_key_is_not_its_name_is_written(database_url: str) -> None:
    """`json_to_recordset` would read a key it does not find as null: such a table is left
    to an executemany."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        assert _unnest_insert(keyed, ("day",), engine.dialect) is None
        async with session_factory(engine)() as session, session.begin():
            await insert_rows(session, keyed, [{"day": date(2018, 6, 1)}])
        async with engine.connect() as connection:
            assert (await connection.execute(select(keyed.c.day))).scalar() == date(2018, 6, 1)
    finally:
        await engine.dispose()
