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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.util.concurrency import greenlet_spawn

_CONNECTION = "unionhub.postgres_connection"  # in a session's `info`: its transaction and connection


async def postgres_fetch(session: AsyncSession | AsyncConnection, statement: str, *parameters: Any) -> Sequence[Any]:
    """The rows (asyncpg's `Record`s) of `statement`, written with `$1`-style parameters."""
    sync = await _connection(session)
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


async def _connection(session: AsyncSession | AsyncConnection) -> Connection:
    """The connection of the session's transaction; asked of the session once a transaction
    (each `session.connection()` costs a hand-over to a greenlet, as much as a statement's
    parameters)."""
    if isinstance(session, AsyncConnection):
        return session.sync_connection  # type: ignore[return-value]  # started: it is in use
    transaction = session.sync_session.get_transaction()
    known = session.info.get(_CONNECTION)
    if transaction is not None and known is not None and known[0] is transaction:
        sync: Connection = known[1]
        return sync
    sync = (await session.connection()).sync_connection  # type: ignore[assignment]  # started by the call
    session.info[_CONNECTION] = (session.sync_session.get_transaction(), sync)
    return sync


@dataclass(frozen=True)
class PostgresStatement:
    """A SQLAlchemy statement compiled once for `postgres_fetch`: its SQL, its parameters in
    order with SQLAlchemy's processing of each, and the values of those it fixes itself."""

    sql: str
    order: tuple[str, ...]
    processors: dict[str, Callable[[Any], Any]]
    fixed: dict[str, Any]

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> PostgresStatement:
        compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
        return cls(str(compiled), tuple(compiled.positiontup or ()), dict(compiled._bind_processors), compiled.params)

    def arguments(self, **given: Any) -> list[Any]:
        """The statement's parameters, in order: those `given`, and the others it fixes."""
        values = []
        for name in self.order:
            if name in given:
                value = given[name]
            elif (value := self.fixed[name]) is None:
                raise TypeError(f"no value given for the parameter {name!r}")
            process = self.processors.get(name)
            values.append(value if process is None else process(value))
        return values

    async def fetch(self, session: AsyncSession | AsyncConnection, **given: Any) -> Sequence[Any]:
        return await postgres_fetch(session, self.sql, *self.arguments(**given))


def _raise_as_sqlalchemy_does(
    connection: Connection, adapted: Any, error: Exception, statement: str, parameters: tuple[Any, ...]
) -> NoReturn:
    """Raises `error` as SQLAlchemy would have from its own cursor's `execute`."""
    try:
        adapted._handle_exception(error)  # asyncpg's error as the dialect's DBAPI error (or as it is)
    except Exception as translated:
        connection._handle_dbapi_exception(translated, statement, parameters, None, None)
    raise AssertionError("the adapter raises")  # pragma: no cover
