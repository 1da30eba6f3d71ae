"""Async SQLAlchemy engines for SQLite (local default) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Select,
    String,
    Update,
    bindparam,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.util.concurrency import await_

from .settings import DatabaseTimeouts

T = TypeVar("T")
Stmt = TypeVar("Stmt", Select[Any], Update)


def create_engine(url: str, *, timeouts: DatabaseTimeouts | None = None, **kwargs: Any) -> AsyncEngine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and immediate write locks;
    PostgreSQL sessions get `timeouts` (server settings given in `connect_args` win)."""
    parsed = make_url(url)
    # An error's text goes into log lines and DLQ headers: it must not carry a statement's
    # values (display names, opinion texts).
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() != "sqlite":
        # The hot path's statements run on asyncpg itself (`postgres_fetch`).
        if (parsed.get_backend_name(), parsed.get_driver_name()) != ("postgresql", "asyncpg"):
            raise ValueError(
                "the database is SQLite (sqlite+aiosqlite://…) or PostgreSQL through asyncpg "
                f"(postgresql+asyncpg://…), not {parsed.drivername}://…"
            )
        if timeouts is not None:
            connect_args = kwargs.setdefault("connect_args", {})
            connect_args["server_settings"] = {**timeouts.server_settings(), **connect_args.get("server_settings", {})}
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 5)
        # The most recently used connection first: its prepared statements are warm, and
        # the ones a quiet period leaves idle are the ones the server may drop.
        kwargs.setdefault("pool_use_lifo", True)
        engine = create_async_engine(url, **kwargs)
        engine.sync_engine.dialect.do_ping = _ping_asyncpg  # type: ignore[method-assign]
        event.listen(engine.sync_engine.pool, "checkin", _on_checkin)

        @event.listens_for(engine.sync_engine, "handle_error")
        def _on_error(context: Any) -> None:
            # A server shutting down, or one that became a read-only standby in a failover:
            # drop the pool, so the retry connects afresh (to the new primary).
            if _sqlstate(context.original_exception) in _SERVER_GONE:
                context.is_disconnect = True

        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # The pool resets a connection checked in with a ROLLBACK even after a COMMIT (the session
    # closes its connection once the transaction has ended): one more hand-over to aiosqlite's
    # thread a transaction. Rolled back here only when SQLite says a transaction is open, which
    # holds as long as nothing is still queued for the connection on that thread at check-in:
    # a statement SQLAlchemy runs or knows of is followed by its own ROLLBACK, and a cancelled
    # one invalidates the connection (`_begin_sqlite` makes BEGIN one of those).
    kwargs.setdefault("pool_reset_on_return", None)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine.sync_engine.pool, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return
        try:
            open_transaction = dbapi_connection.driver_connection.in_transaction
        except ValueError:  # aiosqlite's connection is closed: nothing to roll back
            return
        if open_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself, so SAVEPOINT works and the write lock is
        # taken at BEGIN (no deadlock upgrading a read lock under concurrent writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.get_execution_options().get("readonly", False)
        connection.connection.info[_BEGIN] = "BEGIN" if readonly else "BEGIN IMMEDIATE"

    engine.sync_engine.dialect.do_begin = _begin_sqlite  # type: ignore[method-assign]
    return engine


_BEGIN = "unionhub.begin"  # in a pooled connection's info: the BEGIN its next transaction takes


def _begin_sqlite(dbapi_connection: Any) -> None:
    """The transaction's BEGIN (IMMEDIATE for a writer: the write lock taken up front) in one
    hand-over to aiosqlite's thread (see `sqlite_fetchall`), run as the dialect's own step, so
    that SQLAlchemy handles its failure: a cancelled BEGIN, maybe still queued, invalidates the
    connection, and a closed connection counts as a disconnect."""
    await_(
        _on_aiosqlite_thread(dbapi_connection.dbapi_connection, dbapi_connection.info.pop(_BEGIN, "BEGIN IMMEDIATE"))
    )


async def sqlite_fetchall(session: AsyncSession, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """The rows of `statement`, run on the session's SQLite connection, in its transaction (begun
    if need be), in one hand-over to aiosqlite's thread. Through SQLAlchemy's cursor a statement
    takes three or four (cursor, execute, fetch, close), and each waits for the GIL and then for
    the event loop, busy decoding the next batch: 15 of them made a batch of 10,000 work items
    take three times as long as alone (bench/README.md, round six). For bulk statements on tables
    the session holds no objects of: unlike `session.execute`, nothing is flushed first, and
    SQLAlchemy's events and echo see none of it. Errors come as through SQLAlchemy: wrapped
    (`OperationalError` for a locked or closed database, retried as transient; `IntegrityError`),
    the statement's values hidden."""
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        raise ValueError(f"sqlite_fetchall runs on SQLite, not {connection.dialect.name}")
    adapted = (await connection.get_raw_connection()).dbapi_connection
    try:
        return await _on_aiosqlite_thread(adapted, statement, parameters)
    except sqlite3.Error as error:
        raise DBAPIError.instance(statement, parameters, error, sqlite3.Error, hide_parameters=True) from error


async def _on_aiosqlite_thread(adapted: Any, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """`statement`'s rows through SQLAlchemy's adapted aiosqlite connection, in one hand-over;
    its errors as sqlite3's (aiosqlite's "connection closed" too, as the adapter says it)."""
    try:
        return list(await adapted.driver_connection.execute_fetchall(statement, parameters))
    except Exception as error:
        adapted._handle_exception(error)  # raises: the error translated, or as it is
        raise


def is_unique_violation(exc: BaseException) -> bool:
    """A key already there, on PostgreSQL (23505) or SQLite (a primary key or unique index)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return sqlstate(exc) == UNIQUE_VIOLATION or getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE


_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"}


def write_lock(engine: AsyncEngine) -> AbstractAsyncContextManager[Any]:
    """What a writer holds around its transaction: one writer at a time on SQLite.

    SQLite allows one writer; a second one waits in its busy handler, which sleeps in steps
    of up to 100 ms. Queueing the process's writers here instead keeps the file lock free
    of such waits (measured: 150 to several thousand commands per second).
    """
    if engine.dialect.name != "sqlite":
        return nullcontext()
    return asyncio.Lock()


# A connection checked in this recently is not pinged at check-out: see `_ping_asyncpg`.
PING_AFTER_IDLE_SECONDS = 1.0
_CHECKED_IN: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()  # asyncpg's connection -> when


def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
    if dbapi_connection is not None:  # None: it was invalidated
        _CHECKED_IN[dbapi_connection.driver_connection] = time.monotonic()


def _ping_asyncpg(dbapi_connection: Any) -> bool:
    """The pool's check of a connection before a check-out, in one round trip (`;`), made
    only when the connection was idle for `PING_AFTER_IDLE_SECONDS` or more. Under load
    every batch and every relay round checks one out, and on an event loop that both share
    a round trip costs 1–2 ms of their latency (bench/README.md, round nine); the ones a
    quiet period left idle are those a server's idle timeout, a restart or a firewall may
    have dropped. One that died in use, or in the last second, fails its first statement
    instead: a disconnect, which drops the pool, and the batch (or the relay's round, the
    timer's tick, the readiness probe: `ping`) is tried again; a read-API request that meets
    it answers 500 once.

    SQLAlchemy's asyncpg dialect wraps its ping in a transaction (BEGIN, `;`, ROLLBACK:
    three round trips) for pgbouncer's transaction mode, which this system does not use. A
    failure is translated as the dialect's own ping does, so a dead connection is replaced."""
    checked_in = _CHECKED_IN.get(dbapi_connection.driver_connection)
    if checked_in is not None and time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
        return True
    try:
        await_(dbapi_connection._connection.fetchrow(";"))
    except Exception as error:
        dbapi_connection._handle_exception(error)
    return True


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine, timeout: float = 2.0) -> bool:
    """True when the database answers `SELECT 1` within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            try:
                await _select_one(engine)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                # A pooled connection found dead (the pool is dropped with it) is not the
                # database down: asked again, on a new connection.
                await _select_one(engine)
        return True
    except Exception:
        return False


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execution_options(readonly=True)  # SQLite: no write lock for a probe
        await connection.execute(text("SELECT 1"))


# SQLSTATEs worth retrying unchanged (PostgreSQL, appendix A): a lost race (deadlock,
# serialization failure), no slot or server right now (too many connections, starting up,
# shutting down), a failover (read-only transaction on what became a standby), a limit of
# `DatabaseTimeouts` reached (lock wait, statement, this session idle in a transaction).
_TRANSIENT_STATES = {"40P01", "40001", "53300", "57P01", "57P02", "57P03", "25006", "55P03", "57014", "25P03"}
# A schema not migrated yet: an undefined table (42P01) or column (42703). An instance of a
# new version may run before its migration is done (the rollout waits for readiness, which
# waits for the schema, but a pod restarted mid-migration does not); the migration comes, so
# the command waits for it instead of going to the DLQ. SQLite says "no such table/column"
# with an OperationalError, retried already.
_NOT_MIGRATED_STATES = {"42P01", "42703"}
UNIQUE_VIOLATION = "23505"  # a key already there: the data's doing, never retried as such
_TRANSIENT_CLASSES = {"08"}  # connection exceptions
_SERVER_GONE = {"57P01", "57P02", "57P03", "25006", "25P03"}


def _sqlstate(error: BaseException | None) -> str | None:
    state = getattr(error, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_transient(exc: BaseException) -> bool:
    """Failures worth retrying unchanged: the database or network is away, not the data wrong."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    # SQLAlchemy wraps most of asyncpg's errors as a plain DBAPIError, and asyncpg raises its
    # own unwrapped while a connection is being made: either way the SQLSTATE tells.
    state = sqlstate(exc)
    return state is not None and (
        state in _TRANSIENT_STATES or state in _NOT_MIGRATED_STATES or state[:2] in _TRANSIENT_CLASSES
    )


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE of `exc` (as SQLAlchemy wraps it, or as asyncpg raises it)."""
    return _sqlstate(exc.orig if isinstance(exc, DBAPIError) else exc)


def is_statement_timeout(exc: BaseException) -> bool:
    """PostgreSQL cancelled a statement that ran past `statement_timeout` (57014)."""
    return sqlstate(exc) == "57014"


def is_lock_timeout(exc: BaseException) -> bool:
    """PostgreSQL gave up waiting for a lock past `lock_timeout` (55P03)."""
    return sqlstate(exc) == "55P03"


def insert_on_conflict(session: AsyncSession | Session, table: Any) -> Any:
    """An INSERT of `table` that can say what to do on conflict (`ON CONFLICT …`), in the
    dialect of the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


KEYS = "keys"  # the bind parameter of `where_in`


def where_in(statement: Stmt, column: ColumnElement[Any], dialect: Dialect) -> Stmt:
    """`statement` (a select or an update) narrowed to the rows whose `column` is one of the
    distinct keys given at execution as the parameter `KEYS`. Build it once and keep it:
    a statement object used again skips SQLAlchemy's building and cache-key work.

    On PostgreSQL a join with `unnest` of one array parameter instead of `IN (…)`: one
    statement whatever the number of keys (prepared once, where `IN` has one per list length
    and renders every value), 2.5–4.5 × faster at a few hundred keys, and whatever plan it
    gets looks each key up, where an `IN` list's generic plan made on a small table scans it
    once the table has grown (bench/README.md). On SQLite an expanding `IN`, under its
    parameter limit (see `chunks`)."""
    if dialect.name != "postgresql":
        return statement.where(column.in_(bindparam(KEYS, expanding=True)))
    # No length on a string array: a cast to varchar(n) would cut a longer key to one that matches.
    element = String() if isinstance(column.type, String) else column.type
    listed = func.unnest(bindparam(KEYS, type_=ARRAY(element))).table_valued("key").render_derived()
    return statement.where(column == listed.c.key)


def chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """Slices of `values` small enough for an `IN (…)` under SQLite's parameter limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def where_in_keys(values: Sequence[T], dialect: Dialect) -> Iterator[Sequence[T]]:
    """The key lists to run a `where_in` statement with for `values`: all at once on
    PostgreSQL (one array), in `chunks` elsewhere; none for no values."""
    if dialect.name != "postgresql":
        yield from chunks(values)
    elif values:
        yield values


async def upsert(session: AsyncSession, table: Any, values: dict[str, Any]) -> None:
    """Inserts `values`, or updates the row with the same primary key."""
    keys = [c.name for c in table.primary_key.columns]
    statement = insert_on_conflict(session, table).values(values)
    changes = {k: statement.excluded[k] for k in values if k not in keys}
    if changes:
        statement = statement.on_conflict_do_update(index_elements=keys, set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    await session.execute(statement)
