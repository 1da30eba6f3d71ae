"""Statements of the commands' hot path run on the session's asyncpg connection directly.

Through SQLAlchemy a statement costs about 150 µs more of CPU than asyncpg's own `fetch`
(compiled-cache lookup, parameter processing, its cursor and result objects): in a batch of
15 commands, as 500 commands a second come, SQLAlchemy's execution was 42 % of the CPU
(bench/README.md, round eight). So the runtime's own statements of every batch (the inbox's
claim, a repository's preload, an `unnest` insert, the held lanes' check) skip it on
PostgreSQL, and so do the outbox relay's of every round. They run in the session's (or the
connection's) current transaction or savepoint (SQLAlchemy begins it, as for its own
statements), on tables the session holds no objects of; SQLAlchemy's events and echo see
none of them.

Their errors go through SQLAlchemy's own handling as from its cursor: the dialect translates
asyncpg's, then SQLAlchemy wraps them (`DBAPIError`, the values hidden), runs the engine's
`handle_error` hook and, for a lost connection or a server gone (a failover), invalidates the
connection and the pool; a cancellation invalidates the connection (a statement may still be
under way on it). Not done here: the asyncpg dialect's reset of its own prepared-statement
cache when a migration made one stale (asyncpg drops its own, which these use).

The private parts of SQLAlchemy's asyncpg adapter used here are pinned by `constraints.txt`
and checked by `tests/unit/runtime/test_postgres_internals.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.sql.sqltypes import ARRAY, NumericCommon
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlalchemy.util.concurrency import greenlet_spawn

_CONNECTION = "unionhub.postgres_connection"  # in a session's `info`: its transaction and connection


async def postgres_fetch(on: AsyncSession | AsyncConnection, statement: str, *parameters: Any) -> Sequence[Any]:
    """The rows (asyncpg's `Record`s) of `statement`, written with `$1`-style parameters, run
    in the transaction of `on` (a session, or a connection with a transaction begun)."""
    if isinstance(on, AsyncConnection):
        sync = on.sync_connection
        assert sync is not None, "the connection is started"
        _check_asyncpg(sync)
        if not sync.in_transaction():
            # The statement would begin a transaction SQLAlchemy does not know of, and the
            # pool's rollback at check-in would take back what it wrote.
            raise InvalidRequestError("postgres_fetch on a connection runs in its transaction: begin it first")
    else:
        sync = await _connection(on)
    # SQLAlchemy's adapter of the asyncpg connection (`AsyncAdapt_asyncpg_connection`): its
    # lock and lazily begun transaction are the ones its own cursor uses for a statement.
    adapted: Any = sync.connection.dbapi_connection
    try:
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()
            rows: Sequence[Any] = await adapted._connection.fetch(statement, *parameters)
            return rows
    except BaseException as error:  # a cancellation too: the connection may be mid-statement
        await greenlet_spawn(_raise_as_sqlalchemy_does, sync, adapted, error, statement, parameters)
        raise  # not reached: the above raises


async def _connection(session: AsyncSession) -> Connection:
    """The connection of the session's current transaction or savepoint, asked of the
    session once each (a `session.connection()` costs a hand-over to a greenlet, as much as
    a statement's parameters): asking also emits a savepoint begun but not yet sent."""
    sync_session = session.sync_session
    current = sync_session.get_nested_transaction() or sync_session.get_transaction()
    known = session.info.get(_CONNECTION)
    if current is not None and current.is_active and known is not None and known[0] is current:
        cached: Connection = known[1]
        return cached
    connection = await session.connection()
    sync = connection.sync_connection
    assert sync is not None, "the session's connection is started"
    _check_asyncpg(sync)
    session.info[_CONNECTION] = (sync_session.get_nested_transaction() or sync_session.get_transaction(), sync)
    return sync


def _check_asyncpg(connection: Connection) -> None:
    if connection.dialect.driver != "asyncpg":
        raise ValueError(f"postgres_fetch runs on PostgreSQL through asyncpg, not {connection.dialect.name}")


@dataclass(frozen=True)
class PostgresStatement:
    """A SQLAlchemy statement compiled once for `postgres_fetch`: its SQL, its parameters in
    order with SQLAlchemy's processing of each, and the values of those it fixes itself."""

    sql: str
    order: tuple[str, ...]
    processors: dict[str, Callable[[Any], Any]]
    fixed: dict[str, Any]  # the values of the parameters not required at execution
    required: frozenset[str]
    # What SQLAlchemy applies to each column of a row read (None: nothing); None for a
    # statement with a number column (`Numeric`, `Float`), whose processing depends on the
    # type the server reports, which asyncpg's `Record`s do not carry.
    readers: tuple[Callable[[Any], Any] | None, ...] | None

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> PostgresStatement:
        compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a statement with parameters rendered at execution (an expanding IN) has no fixed SQL")
        required = frozenset(name for name, bind in compiled.binds.items() if bind.required)
        order = tuple(compiled.positiontup or ())
        kinds = [column.type.dialect_impl(dialect) for column in getattr(statement, "exported_columns", ())]
        readers = (
            None
            if any(_reads_a_number(kind, dialect) for kind in kinds)
            else tuple(kind.result_processor(dialect, None) for kind in kinds)
        )
        return cls(str(compiled), order, dict(compiled._bind_processors), compiled.params, required, readers)

    def arguments(self, **given: Any) -> list[Any]:
        """The statement's parameters, in order: those `given`, and the others it fixes."""
        values = []
        for name in self.order:
            if name in given:
                value = given[name]
            elif name in self.required:
                raise TypeError(f"no value given for the parameter {name!r}")
            else:
                value = self.fixed[name]
            process = self.processors.get(name)
            values.append(value if process is None else process(value))
        return values

    async def fetch(self, on: AsyncSession | AsyncConnection, **given: Any) -> Sequence[Any]:
        return await postgres_fetch(on, self.sql, *self.arguments(**given))

    async def rows(self, on: AsyncSession | AsyncConnection, **given: Any) -> Sequence[Sequence[Any]]:
        """The rows as SQLAlchemy reads them: each column's value through its type's reading
        (asyncpg's own `Record`s when no column needs any)."""
        if self.readers is None:
            raise ValueError("a statement reading a number column is run through SQLAlchemy")
        readers = self.readers
        records = await self.fetch(on, **given)
        if not any(readers):
            return records
        return [self.read(record) for record in records]

    def read(self, record: Sequence[Any]) -> tuple[Any, ...]:
        """A row's values (its columns', in order, as asyncpg gives them) as SQLAlchemy reads them."""
        assert self.readers is not None, "a statement reading a number column is run through SQLAlchemy"
        return tuple(value if read is None else read(value) for read, value in zip(self.readers, record, strict=True))


def _reads_a_number(kind: TypeEngine[Any], dialect: Dialect) -> bool:
    """A number type (`Numeric`, `Float`), or one made of or around one: its reading
    depends on the type the server reports."""
    while True:
        if isinstance(kind, NumericCommon):
            return True
        if isinstance(kind, TypeDecorator):
            kind = kind.impl_instance.dialect_impl(dialect)
        elif isinstance(kind, ARRAY):
            kind = kind.item_type.dialect_impl(dialect)
        else:
            return False


def _raise_as_sqlalchemy_does(
    connection: Connection, adapted: Any, error: BaseException, statement: str, parameters: tuple[Any, ...]
) -> NoReturn:
    """Raises `error` as SQLAlchemy would have from its own cursor's `execute`."""
    try:
        if isinstance(error, Exception):
            adapted._handle_exception(error)  # raises asyncpg's error as the dialect's DBAPI error
        raise error
    except BaseException as raised:
        if isinstance(raised, Exception) and not isinstance(raised, connection.dialect.loaded_dbapi.Error):
            raise  # not a database's error: SQLAlchemy's cursor path lets it through as it is
        connection._handle_dbapi_exception(raised, statement, parameters, None, None)
