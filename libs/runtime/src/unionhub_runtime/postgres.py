"""Statements of the commands' hot path run on the session's asyncpg connection directly.

Through SQLAlchemy a statement costs about 150 µs more of CPU than asyncpg's own `fetch`
(compiled-cache lookup, parameter processing, its cursor and result objects): in a batch of
15 commands, as 500 commands a second come, SQLAlchemy's execution was 40 % of the CPU
(bench/README.md, round eight). So the runtime's own statements of every batch (the inbox's
claim, a repository's preload, an `unnest` insert) skip it on PostgreSQL. They run in the
session's transaction (begun here if it is not yet), on tables the session holds no objects
of; SQLAlchemy's events and echo see none of them.

Their errors come exactly as through SQLAlchemy: the dialect translates asyncpg's, then
SQLAlchemy's own handling wraps them (`DBAPIError`, the values hidden), runs the engine's
`handle_error` hook and, for a lost connection or a server gone (a failover), invalidates
the connection and the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.util.concurrency import greenlet_spawn


async def postgres_fetch(session: AsyncSession | AsyncConnection, statement: str, *parameters: Any) -> Sequence[Any]:
    """The rows (asyncpg's `Record`s) of `statement`, written with `$1`-style parameters."""
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    sync = connection.sync_connection
    assert sync is not None, "a session's connection is started"
    # SQLAlchemy's adapter of the asyncpg connection (`AsyncAdapt_asyncpg_connection`): its
    # lock and lazily begun transaction are the ones its own cursor uses for a statement.
    adapted: Any = sync.connection.dbapi_connection
    try:
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()
            rows: Sequence[Any] = await adapted._connection.fetch(statement, *parameters)
            return rows
    except Exception as error:
        await greenlet_spawn(_raise_as_sqlalchemy_does, sync, adapted, error, statement, parameters)
        raise  # not reached: the above raises


def _raise_as_sqlalchemy_does(
    connection: Connection, adapted: Any, error: Exception, statement: str, parameters: tuple[Any, ...]
) -> NoReturn:
    """Raises `error` as SQLAlchemy would have from its own cursor's `execute`."""
    try:
        adapted._handle_exception(error)  # asyncpg's error as the dialect's DBAPI error (or as it is)
    except Exception as translated:
        connection._handle_dbapi_exception(translated, statement, parameters, None, None)
    raise AssertionError("the adapter raises")  # pragma: no cover
