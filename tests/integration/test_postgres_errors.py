"""PostgreSQL's own transient errors, raised for real by a PostgreSQL server and seen through
SQLAlchemy as the services see them, are retried, not dead-lettered (issue 14, finding 2).

Each is raised both ways the services run a statement: through SQLAlchemy, and on the
session's asyncpg connection (`postgres_fetch`, the hot path's), which must raise the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeAlias

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import _pg_execute
from unionhub_runtime.database import create_engine, is_statement_timeout, is_transient, session_factory
from unionhub_runtime.logs import describe_error
from unionhub_runtime.postgres import postgres_fetch
from unionhub_runtime.settings import DatabaseTimeouts

pytestmark = pytest.mark.integration


@pytest.fixture
async def scratch(postgres_admin_url: str) -> AsyncIterator[str]:
    """A database of its own with one table."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _pg_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    await _pg_execute(url, "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0)")
    yield url
    await _pg_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


Failure: TypeAlias = Callable[[AsyncEngine, str], Awaitable[DBAPIError]]


@pytest.fixture(params=["sqlalchemy", "postgres_fetch"])
def failure(request: pytest.FixtureRequest) -> Failure:
    """What running `sql` in a transaction of `engine` raises, one way or the other."""

    async def fail(engine: AsyncEngine, sql: str) -> DBAPIError:
        with pytest.raises(DBAPIError) as caught:
            async with session_factory(engine)() as session, session.begin():
                if request.param == "sqlalchemy":
                    await session.execute(text(sql))
                else:
                    await postgres_fetch(session, sql)
        return caught.value

    return fail


async def test_a_write_after_a_failover_to_a_read_only_server_is_transient(scratch: str, failure: Failure) -> None:
    engine = create_engine(scratch, connect_args={"server_settings": {"default_transaction_read_only": "on"}})
    try:
        error = await failure(engine, "UPDATE t SET n = n + 1 WHERE id = 1")
    finally:
        await engine.dispose()
    assert error.orig.sqlstate == "25006"  # type: ignore[union-attr]
    assert is_transient(error)
    assert error.connection_invalidated  # the pool forgets the standby: the retry connects afresh


async def test_too_many_connections_is_transient(scratch: str) -> None:
    role = f"r_{uuid.uuid4().hex[:8]}"
    await _pg_execute(scratch, f"CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1; GRANT ALL ON t TO {role}")
    url = make_url(scratch).set(username=role, password="pw")
    engine = create_async_engine(url, pool_size=2)
    try:
        async with engine.connect() as held:  # the role's only slot
            await held.execute(text("SELECT 1"))
            other = create_async_engine(url)
            try:
                with pytest.raises(DBAPIError) as caught:
                    async with other.connect() as connection:
                        await connection.execute(text("SELECT 1"))
            finally:
                await other.dispose()
    finally:
        await engine.dispose()
        await _pg_execute(scratch, f"REVOKE ALL ON t FROM {role}; DROP ROLE {role}")
    assert caught.value.orig.sqlstate == "53300"  # type: ignore[union-attr]
    assert is_transient(caught.value)


async def test_a_deadlock_is_transient(scratch: str) -> None:
    engine = create_async_engine(scratch)
    first_locked, second_locked = asyncio.Event(), asyncio.Event()

    async def crossing(mine: int, theirs: int, locked: asyncio.Event, other: asyncio.Event) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE t SET n = n + 1 WHERE id = :id"), {"id": mine})
            locked.set()
            await other.wait()
            await connection.execute(text("UPDATE t SET n = n + 1 WHERE id = :id"), {"id": theirs})

    try:
        results = await asyncio.gather(
            crossing(1, 2, first_locked, second_locked),
            crossing(2, 1, second_locked, first_locked),
            return_exceptions=True,
        )
    finally:
        await engine.dispose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DBAPIError)
    assert errors[0].orig.sqlstate == "40P01"  # type: ignore[union-attr]
    assert is_transient(errors[0])


@pytest.mark.parametrize("way", ["sqlalchemy", "postgres_fetch"])
async def test_a_connection_ended_by_the_server_is_transient(scratch: str, postgres_admin_url: str, way: str) -> None:
    engine = create_async_engine(scratch)
    try:
        async with session_factory(engine)() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await _pg_execute(postgres_admin_url, f"SELECT pg_terminate_backend({pid})")  # a failover's cut
            with pytest.raises(DBAPIError) as caught:
                if way == "sqlalchemy":
                    await session.execute(text("SELECT 1"))
                else:
                    await postgres_fetch(session, "SELECT 1")
            assert (await session.connection()).invalidated  # the pool replaces it
    finally:
        await engine.dispose()
    assert is_transient(caught.value)
    assert caught.value.connection_invalidated


async def test_a_constraint_error_is_described_without_the_row_postgresql_puts_in_its_detail(
    scratch: str, failure: Failure
) -> None:
    engine = create_engine(scratch)
    try:
        await _pg_execute(scratch, "CREATE TABLE people (name text, n int NOT NULL)")
        error = await failure(engine, "INSERT INTO people VALUES ('Li Wei', NULL)")
    finally:
        await engine.dispose()
    assert "Li Wei" in str(error)  # "DETAIL: Failing row contains (Li Wei, null)."
    described = describe_error(error)
    assert "Li Wei" not in described  # what goes into log lines and the DLQ's error.message
    assert "23502" in described and "not-null" in described


async def test_a_statement_past_the_services_limit_is_transient_and_known_as_a_timeout(
    scratch: str, failure: Failure
) -> None:
    engine = create_engine(scratch, timeouts=DatabaseTimeouts(statement_timeout_ms=50))
    try:
        error = await failure(engine, "SELECT pg_sleep(1)")
    finally:
        await engine.dispose()
    assert error.orig.sqlstate == "57014"  # type: ignore[union-attr]
    # Retried like an outage, but the pipeline counts it: a batch always past it is split.
    assert is_transient(error) and is_statement_timeout(error)


async def test_a_table_or_column_not_migrated_yet_is_transient(scratch: str, failure: Failure) -> None:
    """A new version's instance may read a command before its migration ran: the command
    waits for the migration (issue 18.2) instead of going to the DLQ as a handler error."""
    engine = create_engine(scratch)
    try:
        no_table = await failure(engine, "SELECT 1 FROM members")
        no_column = await failure(engine, "SELECT left_reason FROM t")
    finally:
        await engine.dispose()
    assert no_table.orig.sqlstate == "42P01"  # type: ignore[union-attr]
    assert no_column.orig.sqlstate == "42703"  # type: ignore[union-attr]
    assert is_transient(no_table) and is_transient(no_column)
    assert not is_transient(await _syntax_error(scratch, failure)), "a mistake in a statement stays a handler error"


async def _syntax_error(url: str, failure: Failure) -> DBAPIError:
    engine = create_engine(url)
    try:
        return await failure(engine, "SELEC 1")
    finally:
        await engine.dispose()
