"""Statements run on SQLite in one hand-over to aiosqlite's thread (`database.sqlite_fetchall`,
and the transaction's BEGIN): their errors still come as SQLAlchemy's, so that a locked
database is retried as transient and a key already there is told apart, and a statement that
fails undoes only itself (the work scores' fast path relies on it)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from unionhub_runtime.database import create_engine, is_transient, is_unique_violation, session_factory, sqlite_fetchall

pytestmark = pytest.mark.integration


async def test_a_failing_statement_undoes_itself_not_the_transaction_and_says_why(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE ids (id TEXT PRIMARY KEY)")
        async with session_factory(engine)() as session, session.begin():
            await sqlite_fetchall(session, "INSERT INTO ids SELECT value FROM json_each(?)", ('["a"]',))
            with pytest.raises(IntegrityError) as failure:
                await sqlite_fetchall(session, "INSERT INTO ids SELECT value FROM json_each(?)", ('["b-secret", "a"]',))
            assert is_unique_violation(failure.value)
            assert "b-secret" not in str(failure.value)  # the values are hidden, as through SQLAlchemy
            with pytest.raises(OperationalError):
                await sqlite_fetchall(session, "SELECT * FROM no_such_table")
            await sqlite_fetchall(session, "INSERT INTO ids VALUES (?)", ("c",))
        async with session_factory(engine)() as session:
            assert await sqlite_fetchall(session, "SELECT id FROM ids ORDER BY id") == [("a",), ("c",)]
            await session.close()  # the connection closed under the session: a transient error
            await engine.dispose()
            (await session.connection())  # a fresh connection, then closed behind SQLAlchemy's back
            raw = await (await session.connection()).get_raw_connection()
            await raw.driver_connection.close()
            with pytest.raises(OperationalError) as closed:
                await sqlite_fetchall(session, "SELECT 1")
            assert is_transient(closed.value)
    finally:
        await engine.dispose()


async def test_a_begin_on_a_locked_database_fails_as_transient(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA busy_timeout=50")
            await connection.commit()
            other.execute("BEGIN IMMEDIATE")  # another process writing
            with pytest.raises(OperationalError) as failure:
                await connection.exec_driver_sql("SELECT 1")
            assert is_transient(failure.value)
            assert "locked" in str(failure.value)
    finally:
        other.rollback()
        other.close()
        await engine.dispose()


async def test_a_connection_returned_within_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    # The pool's own reset is off for SQLite (a ROLLBACK after every COMMIT, a hand-over each):
    # a connection checked in with a transaction open (one SQLAlchemy did not begin, as a task
    # cancelled at the wrong moment may leave it) must still be rolled back, its lock released.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE ids (id TEXT PRIMARY KEY)")
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            await driver.execute("BEGIN IMMEDIATE")
            await driver.execute("INSERT INTO ids VALUES ('left')")
        async with session_factory(engine)() as session, session.begin():  # the same connection
            await sqlite_fetchall(session, "INSERT INTO ids VALUES ('kept')")
        async with session_factory(engine)() as session:
            assert await sqlite_fetchall(session, "SELECT id FROM ids") == [("kept",)]
    finally:
        await engine.dispose()


async def test_a_cancelled_begin_leaves_no_transaction_behind(tmp_path: Path) -> None:
    """A writer cancelled while its BEGIN IMMEDIATE waits for another process's lock (a stop
    after its timeout): once that lock is released, the database is writable by others and
    the pool's connection usable (its BEGIN, still queued when the task was cancelled, ran
    later on an idle connection and held the write lock for good)."""
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0)
    sessions = session_factory(engine)
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE ids (id TEXT PRIMARY KEY)")
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with sessions() as session, session.begin():
                await sqlite_fetchall(session, "INSERT INTO ids VALUES ('cancelled')")

        task = asyncio.create_task(write())
        await asyncio.sleep(0.5)  # waiting in BEGIN IMMEDIATE's busy handler
        task.cancel()
        await asyncio.sleep(0.5)
        other.rollback()  # the cancelled BEGIN's turn on aiosqlite's thread (its task waits for it)
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        other.execute("BEGIN IMMEDIATE")  # writable by others
        other.rollback()
        async with sessions() as session, session.begin():
            await sqlite_fetchall(session, "INSERT INTO ids VALUES ('next')")
        async with sessions() as session:
            assert await sqlite_fetchall(session, "SELECT id FROM ids") == [("next",)]
    finally:
        other.close()
        await engine.dispose()
