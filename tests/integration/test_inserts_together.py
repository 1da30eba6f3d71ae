"""`inserts.InsertsTogether` writes the rows of several tables as `insert_rows` writes each
table's: in one statement on PostgreSQL (data-modifying `WITH`s), each at once elsewhere; what
would change their order runs first (a table added again, an insert one statement cannot
carry, a repository's updates)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Enum,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.support import postgres_fetches
from unionhub_runtime import inserts
from unionhub_runtime.database import create_engine, is_unique_violation, session_factory
from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.repositories import TableRepository
from unionhub_runtime.unit_of_work import Journal


class Colour(enum.Enum):
    red = "red"


metadata = MetaData()
first = Table(
    "together_first",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(20), nullable=False, unique=True),
    Column("blob", LargeBinary),
)
second = Table(
    "together_second",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(20), nullable=False),
    Column("size", BigInteger),
    Column("on", Date),  # a reserved word
)
enumerated = Table(  # a native enum: an executemany, never one statement with others
    "together_enumerated",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("colour", Enum(Colour, name="together_colour"), nullable=False),
)
keyed = Table(
    "together_keyed",
    metadata,
    Column("key", String(20), primary_key=True),
    Column("size", Integer, nullable=False),
)


# Two tables drawing their ids from one sequence (PostgreSQL only): the ids show which table
# was written first.
ordered = MetaData()
shared = Sequence("together_shared_ids", metadata=ordered)
numbered = [
    Table(
        f"together_numbered_{n}",
        ordered,
        # A server default only: a column default leaves the table to the executemany.
        Column("id", BigInteger, server_default=shared.next_value(), primary_key=True),
        Column("name", String(20), nullable=False),
    )
    for n in range(3)
]


@dataclass
class Keyed:
    key: str
    size: int


def named(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}-{i}", "blob": bytes([i % 256])} for i in range(n)]


def dated(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}-{i}", "size": 2**40 + i, "on": date(2018, 6, 1 + i % 28)} for i in range(n)]


@pytest.fixture
async def engine(database_url: str) -> Any:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements `inserts` sends through `postgres_fetch`."""
    return postgres_fetches(monkeypatch, inserts)


async def names(engine: AsyncEngine, table: Table) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(table.c.name).order_by(table.c.id))).scalars())


async def count(session: AsyncSession, table: Table) -> int:
    return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_the_rows_of_several_tables_are_written_as_each_insert_writes_them(
    engine: AsyncEngine, statements: list[str]
) -> None:
    postgres = engine.dialect.name == "postgresql"
    async with session_factory(engine)() as session, session.begin():
        together = InsertsTogether(session)
        await together.add(first, named("a", 300))
        await together.add(second, dated("b", 200))
        # Written at once where one statement cannot carry them, else when run.
        assert await count(session, first) == (0 if postgres else 300)
        await together.run()
        await together.run()  # nothing left: no statement
        async with InsertsTogether(session) as unused:
            await unused.add(second, [])
    assert len(statements) == (1 if postgres else 0)
    assert await names(engine, first) == [r["name"] for r in named("a", 300)]  # ids in the rows' order
    assert await names(engine, second) == [r["name"] for r in dated("b", 200)]
    async with engine.connect() as connection:
        # The 8th row of the first table beside the 1st of the second: values of both kept.
        joined = select(first.c.blob, second.c.size, second.c.on).where(first.c.id == second.c.id + 7)
        row = (await connection.execute(joined.order_by(second.c.id))).first()
    assert row is not None and (row.blob, row.size, row.on) == (b"\x07", 2**40, date(2018, 6, 1))


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_the_tables_are_written_in_the_order_added(engine: AsyncEngine, statements: list[str]) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(ordered.create_all)
    async with session_factory(engine)() as session, session.begin(), InsertsTogether(session) as together:
        for table in (numbered[1], numbered[0], numbered[2]):
            await together.add(table, [{"name": f"n-{i}"} for i in range(2)])
    assert len(statements) == 1
    async with engine.connect() as connection:
        ids = [list((await connection.execute(select(t.c.id).order_by(t.c.id))).scalars()) for t in numbered]
    assert ids[1] < ids[0] < ids[2], ids  # each table's ids drawn after the one added before it


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_table_added_again_runs_what_was_gathered_before(engine: AsyncEngine, statements: list[str]) -> None:
    async with session_factory(engine)() as session, session.begin():
        together = InsertsTogether(session)
        await together.add(first, named("a", 3))
        await together.add(second, dated("b", 3))
        await together.add(first, named("c", 3))
        assert len(statements) == 1 and await count(session, first) == 3
        await together.run()
    assert len(statements) == 2
    assert await names(engine, first) == ["a-0", "a-1", "a-2", "c-0", "c-1", "c-2"]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_an_insert_one_statement_cannot_carry_runs_after_what_was_gathered(
    engine: AsyncEngine, statements: list[str]
) -> None:
    async with session_factory(engine)() as session, session.begin():
        together = InsertsTogether(session)
        await together.add(first, named("a", 3))
        await together.add(enumerated, [{"colour": Colour.red}])
        assert len(statements) == 1  # the gathered rows, then the executemany
        assert (await count(session, first), await count(session, enumerated)) == (3, 1)
        await together.run()
    assert len(statements) == 1


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_unique_violation_fails_the_statement_as_an_insert_would(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        await inserts.insert_rows(session, first, named("a", 1))
        together = InsertsTogether(session)
        await together.add(second, dated("b", 1))
        await together.add(first, named("a", 1))
        with pytest.raises(IntegrityError) as failure:
            await together.run()
        assert is_unique_violation(failure.value)
        await session.rollback()
    assert await names(engine, second) == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_what_was_gathered_is_not_written_after_an_error(engine: AsyncEngine, statements: list[str]) -> None:
    async with session_factory(engine)() as session, session.begin():
        with pytest.raises(RuntimeError):
            async with InsertsTogether(session) as together:
                await together.add(first, named("a", 2))
                raise RuntimeError("the batch failed")
        assert statements == []
    assert await names(engine, first) == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_it_refuses_to_run_in_another_savepoint_than_its_own(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        together = InsertsTogether(session)
        await together.add(first, named("a", 2))
        async with session.begin_nested():
            # Run here, a rollback of the savepoint would take back rows gathered outside it.
            with pytest.raises(RuntimeError, match="savepoint"):
                await together.run()
            with pytest.raises(RuntimeError, match="savepoint"):
                await together.add(second, dated("b", 1))
        await together.run()
    assert await names(engine, first) == ["a-0", "a-1"]


async def test_a_repository_with_updates_runs_the_inserts_gathered_before_them(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        await session.execute(keyed.insert(), [{"key": "k-1", "size": 1}])
    async with session_factory(engine)() as session, session.begin():
        journal = Journal()
        repository = TableRepository(session, journal, keyed, Keyed)
        journal.begin()
        found = await repository.get("k-1")
        assert found is not None
        found.size = 2
        await repository.save(found)
        await repository.add(Keyed("k-2", 3))
        together = InsertsTogether(session)
        await together.add(first, named("a", 2))
        await repository.flush(together)
        # The updates ran, and what was gathered before them first; the repository's own
        # insert went with them, so nothing is left.
        assert await count(session, first) == 2
        assert await count(session, keyed) == 2
        await together.run()
    async with engine.connect() as connection:
        assert sorted((await connection.execute(select(keyed.c.key, keyed.c.size))).all()) == [("k-1", 2), ("k-2", 3)]


async def test_a_repository_without_updates_gathers_its_inserts(engine: AsyncEngine, statements: list[str]) -> None:
    postgres = engine.dialect.name == "postgresql"
    async with session_factory(engine)() as session, session.begin():
        journal = Journal()
        repository = TableRepository(session, journal, keyed, Keyed)
        journal.begin()
        await repository.add(Keyed("k-1", 1))
        async with InsertsTogether(session) as together:
            await repository.flush(together)
            await together.add(first, named("a", 2))
            assert await count(session, keyed) == (0 if postgres else 1)
        assert len(statements) == (1 if postgres else 0)  # run at the end of the block
        assert await count(session, keyed) == 1
    assert await names(engine, first) == ["a-0", "a-1"]
