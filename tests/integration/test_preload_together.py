"""`repositories.preload_together` loads what each repository's `preload` loads, on both
databases: on PostgreSQL the tables' rows in one statement (an array of records a table), one
preload each elsewhere and for a table whose rows SQLAlchemy must read (a number column)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, Date, Integer, LargeBinary, MetaData, Numeric, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from unionhub_runtime import repositories
from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.repositories import TableRepository, preload_together
from unionhub_runtime.unit_of_work import Journal

metadata = MetaData()
people = Table(
    "preload_people",
    metadata,
    Column("person_id", String(40), primary_key=True),
    Column("on", Date),  # a reserved word
    Column("seen_at", UtcInstant),
    Column("visits", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("photo", LargeBinary),
)
places = Table(
    "preload_places",
    metadata,
    Column("place_id", String(40), primary_key=True),
    Column("name", String(40), nullable=False),
)
prices = Table(  # a number column: read through SQLAlchemy, a statement of its own
    "preload_prices",
    metadata,
    Column("item_id", String(40), primary_key=True),
    Column("price", Numeric(12, 2), nullable=False),
)


@dataclass
class Person:
    person_id: str
    on: date | None
    seen_at: datetime | None
    visits: int
    active: bool
    photo: bytes | None


@dataclass
class Place:
    place_id: str
    name: str


@dataclass
class Price:
    item_id: str
    price: Decimal


AWKWARD = 'a "quoted", {braced} \\ key'


@pytest.fixture
async def engine(database_url: str) -> Any:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(
            people.insert(),
            [
                {
                    "person_id": "p-1",
                    "on": date(1, 1, 1),
                    "seen_at": datetime(2018, 5, 31, 16, 0, 0, 123456, tzinfo=UTC),
                    "visits": 2**31 - 1,
                    "active": True,
                    "photo": b"\x00\xff",
                },
                {"person_id": AWKWARD, "on": None, "seen_at": None, "visits": 0, "active": False, "photo": None},
            ],
        )
        await connection.execute(places.insert(), [{"place_id": "x-1", "name": "陶然亭"}])
        await connection.execute(prices.insert(), [{"item_id": "i-1", "price": Decimal("12345678.90")}])
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements `preload_together` sends itself."""
    sent: list[str] = []
    fetch = repositories.postgres_fetch

    async def counted(on: Any, statement: str, *parameters: Any) -> Any:
        sent.append(statement)
        return await fetch(on, statement, *parameters)

    monkeypatch.setattr(repositories, "postgres_fetch", counted)
    return sent


def repositories_of(session: AsyncSession) -> tuple[TableRepository[Any], ...]:
    journal = Journal()
    journal.begin()
    return (
        TableRepository(session, journal, people, Person),
        TableRepository(session, journal, places, Place),
        TableRepository(session, journal, prices, Price),
    )


async def loaded(engine: AsyncEngine, together: bool, keys: tuple[list[str], list[str], list[str]]) -> list[Any]:
    """What the repositories hold of `keys` after preloading them together or one by one."""
    async with session_factory(engine)() as session, session.begin():
        found = repositories_of(session)
        if together:
            await preload_together(*zip(found, keys, strict=True))
        else:
            for repository, wanted in zip(found, keys, strict=True):
                await repository.preload(wanted)
        return [repository._loaded for repository in found]


async def test_the_rows_are_those_each_preload_loads(engine: AsyncEngine, statements: list[str]) -> None:
    keys = (["p-1", AWKWARD, "p-2", "p-1"], ["x-1", "x-2"], ["i-1"])
    expected = await loaded(engine, False, keys)
    sent_alone = len(statements)
    assert await loaded(engine, True, keys) == expected
    assert expected[0]["p-1"].seen_at == datetime(2018, 5, 31, 16, 0, 0, 123456, tzinfo=UTC)
    assert expected[0]["p-2"] is None and expected[0][AWKWARD].photo is None
    assert expected[1]["x-1"].name == "陶然亭" and expected[2]["i-1"].price == Decimal("12345678.90")
    if engine.dialect.name == "postgresql":
        # People and places in one statement; prices through SQLAlchemy (not counted here).
        assert len(statements) - sent_alone == 1
        assert "preload_people" in statements[-1] and "preload_places" in statements[-1]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_keys_loaded_before_or_not_text_equal_are_not_looked_up(
    engine: AsyncEngine, statements: list[str]
) -> None:
    async with session_factory(engine)() as session, session.begin():
        person, place, _ = repositories_of(session)
        await person.preload(["p-1"])
        before = len(statements)
        # Only places left to look up: one table, its own preload (not this module's statement).
        await preload_together((person, ["p-1"]), (place, ["x-1"]))
        assert len(statements) == before and place._loaded["x-1"] is not None
        # A key longer than the column matches nothing (not cut to one that does).
        await preload_together((person, ["p-1" + "x" * 40]), (place, ["x-1" + "y" * 40]))
        assert len(statements) == before + 1
        assert person._loaded["p-1" + "x" * 40] is None and place._loaded["x-1" + "y" * 40] is None
        await preload_together((person, []), (place, []))
        assert len(statements) == before + 1
