"""`repositories.preload_together` loads what each repository's `preload` loads, on both
databases: on PostgreSQL the tables' rows in one statement (an array of records a table), one
preload each elsewhere and for a table whose rows SQLAlchemy must read (a number column)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Date, Enum, Integer, LargeBinary, MetaData, Numeric, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.types import TypeDecorator

from tests.support import postgres_fetches
from unionhub_runtime import reads
from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.repositories import TableRepository, preload_together
from unionhub_runtime.unit_of_work import Journal


class Shouted(TypeDecorator[str]):
    """Text read back in capitals: a reading that changes the value."""

    impl = String(40)
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else value.upper()


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
    Column("name", Shouted, nullable=False),
)
prices = Table(  # a number column: read through SQLAlchemy, a statement of its own
    "preload_prices",
    metadata,
    Column("item_id", String(40), primary_key=True),
    Column("price", Numeric(12, 2), nullable=False),
)


# Columns kept out of the records (a native enum, which asyncpg would not decode in one; JSON,
# not in `_RECORD_FIELD_TYPES`): such a table has a statement of its own.
tagged = Table(
    "preload_tagged",
    metadata,
    Column("tag_id", String(40), primary_key=True),
    Column("colour", Enum("red", "blue", name="preload_colour"), nullable=False),
    Column("sizes", JSON, nullable=False),
)


@dataclass
class Tag:
    tag_id: str
    colour: str
    sizes: list[int]


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
                {
                    "person_id": "p-3",
                    "on": date(9999, 12, 31),
                    "seen_at": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                    "visits": -(2**31),
                    "active": True,
                    "photo": b"",
                },
            ],
        )
        await connection.execute(tagged.insert(), [{"tag_id": "t-1", "colour": "red", "sizes": [1, 2]}])
        await connection.execute(places.insert(), [{"place_id": "x-1", "name": "xyz 陶然亭"}])
        await connection.execute(prices.insert(), [{"item_id": "i-1", "price": Decimal("12345678.90")}])
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements `preload_together` sends itself."""
    return postgres_fetches(monkeypatch, reads)


def repositories_of(session: AsyncSession) -> tuple[TableRepository[Any], ...]:
    journal = Journal()
    journal.begin()
    return (
        TableRepository(session, journal, people, Person),
        TableRepository(session, journal, places, Place),
        TableRepository(session, journal, prices, Price),
        TableRepository(session, journal, tagged, Tag),
    )


async def loaded(engine: AsyncEngine, together: bool, keys: tuple[list[str], ...]) -> list[Any]:
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
    keys = (["p-1", AWKWARD, "p-2", "p-1", "p-3"], ["x-1", "x-2"], ["i-1"], ["t-1", "t-2"])
    expected = await loaded(engine, False, keys)
    sent_alone = len(statements)
    assert await loaded(engine, True, keys) == expected
    assert expected[0]["p-1"].seen_at == datetime(2018, 5, 31, 16, 0, 0, 123456, tzinfo=UTC)
    assert expected[0]["p-3"].on == date(9999, 12, 31) and expected[0]["p-3"].photo == b""
    assert expected[0]["p-2"] is None and expected[0][AWKWARD].photo is None
    assert expected[1]["x-1"].name == "XYZ 陶然亭"  # through the column type's reading
    assert expected[2]["i-1"].price == Decimal("12345678.90") and expected[3]["t-1"].sizes == [1, 2]
    if engine.dialect.name == "postgresql":
        # People and places in one statement; prices and tags through SQLAlchemy (not counted).
        assert len(statements) - sent_alone == 1
        assert "preload_people" in statements[-1] and "preload_places" in statements[-1]
        assert "preload_prices" not in statements[-1] and "preload_tagged" not in statements[-1]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_one_statement_whichever_keys_are_missing(engine: AsyncEngine, statements: list[str]) -> None:
    async with session_factory(engine)() as session, session.begin():
        person, place, _, _ = repositories_of(session)
        await preload_together((person, ["p-1"]), (place, []))
        await preload_together((person, ["p-1"]), (place, ["x-1"]))  # only places left to look up
        assert len(statements) == 2 and statements[0] == statements[1]  # one text: prepared once
        assert place._loaded["x-1"] is not None
        # A key longer than the column matches nothing (not cut to one that does).
        await preload_together((person, ["p-1" + "x" * 40]), (place, ["x-1" + "y" * 40]))
        assert person._loaded["p-1" + "x" * 40] is None and place._loaded["x-1" + "y" * 40] is None
        await preload_together((person, ["p-1"]), (place, []))  # nothing missing: no statement
        assert len(statements) == 3


async def test_repositories_of_two_sessions_are_refused(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions() as one, sessions() as other:
        with pytest.raises(ValueError, match="one session"):
            await preload_together((repositories_of(one)[0], ["p-1"]), (repositories_of(other)[1], ["x-1"]))
