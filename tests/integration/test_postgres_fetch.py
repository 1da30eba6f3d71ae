"""`postgres_fetch` runs a statement on the session's asyncpg connection, past SQLAlchemy's
execution, and must behave as SQLAlchemy does: in the session's transaction, a failover's
error dropping the whole pool, and a repository's rows read with the same values.
(Its errors, class by class, beside SQLAlchemy's: test_postgres_errors.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidRequestError

from tests.conftest import _pg_execute
from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.postgres import postgres_fetch
from unionhub_runtime.repositories import TableRepository, _postgres_reading
from unionhub_runtime.unit_of_work import Journal

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("databases", ["postgresql"], indirect=True)]

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("thing_id", String(32), primary_key=True),
    Column("count", Integer),
    Column("on", Date),
    Column("at", UtcInstant),
    Column("ok", Boolean),
    Column("doc", JSON),
    Column("blob", LargeBinary),
)
priced = Table("priced", metadata, Column("thing_id", String(32), primary_key=True), Column("price", Numeric(10, 2)))


@dataclass
class Thing:
    thing_id: str
    count: int | None
    on: date | None
    at: datetime | None
    ok: bool | None
    doc: Any
    blob: bytes | None


@dataclass
class Priced:
    thing_id: str
    price: Decimal | None


@pytest.fixture
async def scratch(database_url: str) -> str:
    """A PostgreSQL database of its own (see `pytestmark`) with one table."""
    await _pg_execute(database_url, "CREATE TABLE t (id int PRIMARY KEY)")
    return database_url


@pytest.mark.parametrize("first", ["postgres_fetch", "sqlalchemy"])
async def test_a_statement_runs_in_the_sessions_transaction(scratch: str, first: str) -> None:
    """Whichever runs first begins the transaction; both see each other's writes; a rollback
    takes back both."""
    engine = create_engine(scratch)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            async with session.begin():
                if first == "sqlalchemy":
                    await session.execute(text("INSERT INTO t VALUES (1)"))
                [(inserted,)] = await postgres_fetch(session, "INSERT INTO t VALUES ($1) RETURNING id", 2)
                seen = sorted((await session.execute(text("SELECT id FROM t"))).scalars())
                assert inserted == 2 and seen == ([1, 2] if first == "sqlalchemy" else [2])
                await session.rollback()
            async with session.begin():
                assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
                await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 3)
        async with sessions() as session:
            assert (await session.execute(text("SELECT id FROM t"))).scalars().all() == [3]
    finally:
        await engine.dispose()


async def test_a_statement_runs_in_the_connections_transaction(scratch: str) -> None:
    """On a connection (the outbox relay's round) as on a session: in its transaction,
    begun by the first statement, rolled back or committed with it."""
    engine = create_engine(scratch)
    try:
        async with engine.connect() as connection:
            async with connection.begin() as transaction:
                await postgres_fetch(connection, "INSERT INTO t VALUES ($1)", 1)
                seen = (await connection.execute(text("SELECT id FROM t"))).scalars().all()
                await transaction.rollback()
            assert seen == [1]
            async with connection.begin():
                await postgres_fetch(connection, "INSERT INTO t VALUES ($1)", 2)
        async with engine.connect() as connection:
            # Not begun: the pool's rollback at check-in would take back what it wrote.
            with pytest.raises(InvalidRequestError, match="begin it first"):
                await postgres_fetch(connection, "INSERT INTO t VALUES ($1)", 3)
            assert (await connection.execute(text("SELECT id FROM t"))).scalars().all() == [2]
    finally:
        await engine.dispose()


async def test_a_savepoint_takes_back_what_ran_in_it(scratch: str) -> None:
    """A savepoint begun after the session's connection is known (and cached) still gets its
    statements: rolled back alone, a write in it goes, and so does an error, the transaction
    around it going on."""
    engine = create_engine(scratch)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 1)  # the connection now known
            savepoint = await session.begin_nested()
            await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 2)
            await savepoint.rollback()
            savepoint = await session.begin_nested()
            with pytest.raises(DBAPIError):
                await postgres_fetch(session, "SELEC 1")
            await savepoint.rollback()
            await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 3)  # the transaction is not aborted
            async with session.begin_nested():
                await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 4)  # released: kept
        async with sessions() as session:
            assert sorted((await session.execute(text("SELECT id FROM t"))).scalars()) == [1, 3, 4]
    finally:
        await engine.dispose()


async def test_a_cancelled_statement_leaves_no_connection_behind(scratch: str, postgres_admin_url: str) -> None:
    """Cancelled mid-statement, the connection may still be running it: it is dropped (the
    server's session ends), not given back to the pool for the next transaction."""
    engine = create_engine(scratch)
    sessions = session_factory(engine)
    started = asyncio.Event()
    pid: int | None = None

    async def sleeping() -> None:
        nonlocal pid
        async with sessions() as session, session.begin():
            [(pid,)] = await postgres_fetch(session, "SELECT pg_backend_pid()")
            started.set()
            await postgres_fetch(session, "SELECT pg_sleep(30)")

    try:
        task = asyncio.create_task(sleeping())
        await started.wait()
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with sessions() as session, session.begin():
            [(other,)] = await postgres_fetch(session, "SELECT pg_backend_pid()")
            await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 1)
        async with sessions() as session:
            assert (await session.execute(text("SELECT id FROM t"))).scalars().all() == [1]
    finally:
        await engine.dispose()
    assert other != pid

    async def still_there() -> bool:
        admin = await asyncpg.connect(
            make_url(postgres_admin_url).render_as_string(hide_password=False).replace("+asyncpg", "")
        )
        try:
            return bool(await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid))
        finally:
            await admin.close()

    for _ in range(50):
        if not await still_there():
            break
        await asyncio.sleep(0.1)
    assert not await still_there()


async def test_the_values_of_a_failed_statement_are_hidden(scratch: str) -> None:
    """As through SQLAlchemy (the engine's `hide_parameters`): an error's text goes into log
    lines and dead letters."""
    engine = create_engine(scratch)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with session_factory(engine)() as session, session.begin():
                await postgres_fetch(session, "SELECT 1 / 0 WHERE $1::text IS NOT NULL", "Li Wei")
    finally:
        await engine.dispose()
    assert caught.value.orig.sqlstate == "22012"  # type: ignore[union-attr]
    assert "Li Wei" not in str(caught.value) and "hidden" in str(caught.value)


async def test_a_write_to_a_server_turned_standby_drops_every_pooled_connection(scratch: str) -> None:
    """A failover turns the old primary read-only (25006): through `postgres_fetch` as through
    SQLAlchemy, the engine's hook drops the whole pool, so the retry connects afresh."""
    engine = create_engine(scratch, connect_args={"server_settings": {"default_transaction_read_only": "on"}})
    sessions = session_factory(engine)
    try:
        pooled = set()
        async with sessions() as one, sessions() as two:
            for session in (one, two):
                pooled.add((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        with pytest.raises(DBAPIError) as caught:
            async with sessions() as session, session.begin():
                await postgres_fetch(session, "INSERT INTO t VALUES ($1)", 1)
        async with sessions() as one, sessions() as two:
            after = {(await s.execute(text("SELECT pg_backend_pid()"))).scalar_one() for s in (one, two)}
    finally:
        await engine.dispose()
    assert caught.value.orig.sqlstate == "25006"  # type: ignore[union-attr]
    assert caught.value.connection_invalidated
    assert len(pooled) == 2 and not after & pooled


async def test_a_repository_reads_what_sqlalchemy_reads(scratch: str) -> None:
    """`TableRepository.preload` reads rows with `postgres_fetch`, applying each column's
    result processing (an instant read back in UTC, JSON parsed), and SQLAlchemy where a
    column's processing needs what the rows do not carry (a `Numeric`)."""
    engine = create_engine(scratch)
    sessions = session_factory(engine)
    beijing = timezone(timedelta(hours=8))
    rows: list[dict[str, Any]] = [
        {
            "thing_id": "a",
            "count": 7,
            "on": date(2026, 2, 28),
            "at": datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=beijing),
            "ok": True,
            "doc": {"k": [1, "二"]},
            "blob": b"\x00\xff",
        },
        {"thing_id": "b", "count": None, "on": None, "at": None, "ok": None, "doc": None, "blob": None},
    ]
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(insert(things), rows)
            await connection.execute(insert(priced), [{"thing_id": "a", "price": Decimal("12.50")}])
        async with sessions() as session, session.begin():
            expected = {row.thing_id: Thing(**row._asdict()) for row in await session.execute(select(things))}
            repository = TableRepository(session, Journal(), things, Thing)
            await repository.preload(["a", "b", "missing"])
            read = {key: await repository.get(key) for key in ("a", "b", "missing")}
            prices = TableRepository(session, Journal(), priced, Priced)
            await prices.preload(["a"])
            price = await prices.get("a")
    finally:
        await engine.dispose()
    assert _postgres_reading(select(things), things, engine.dialect) is not None  # read past SQLAlchemy
    assert _postgres_reading(select(priced), priced, engine.dialect) is None  # a Numeric: through it
    assert read == {**expected, "missing": None}
    a = read["a"]
    assert a is not None and a.at == rows[0]["at"] and a.at.tzinfo == UTC
    assert price == Priced("a", Decimal("12.50"))
