"""`database.insert_rows` writes what an insert would, on both databases: one `unnest`
statement on PostgreSQL where the columns allow it, an executemany where they do not (a
native enum, a Python-side default on a column left out), ids drawn in the rows' order."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import BigInteger, Column, Enum, Integer, LargeBinary, MetaData, Numeric, String, Table, select

from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.database import create_engine, insert_rows, session_factory


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
