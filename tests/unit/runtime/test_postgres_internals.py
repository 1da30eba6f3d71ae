"""`postgres_fetch` leans on private parts of SQLAlchemy's asyncpg adapter (pinned by
constraints.txt): an upgrade that renames one fails here, in seconds, not in production."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, String, Table, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from unionhub_runtime.database import create_engine, where_in
from unionhub_runtime.postgres import PostgresStatement


def test_the_adapter_has_what_postgres_fetch_uses() -> None:
    adapter = asyncpg.AsyncAdapt_asyncpg_connection
    slots = {name for kind in adapter.__mro__ for name in getattr(kind, "__slots__", ())}
    assert {"_execute_mutex", "_transaction", "_connection"} <= slots
    assert inspect.iscoroutinefunction(adapter._start_transaction)
    assert callable(adapter._handle_exception)
    assert list(inspect.signature(Connection._handle_dbapi_exception).parameters)[:6] == [
        "self",
        "e",
        "statement",
        "parameters",
        "cursor",
        "context",
    ]


def test_a_statement_compiles_to_its_sql_and_ordered_parameters() -> None:
    dialect = asyncpg.dialect()
    lanes = Table("lanes", MetaData(), Column("lane", String, primary_key=True))
    statement = PostgresStatement.of(where_in(select(literal("lane"), lanes.c.lane), lanes.c.lane, dialect), dialect)
    assert "$1" in statement.sql and "$2" in statement.sql
    assert statement.arguments(keys=("a", "b")) == ["lane", ["a", "b"]]  # the array's processing: a list
    with pytest.raises(TypeError, match="keys"):
        statement.arguments()
    with pytest.raises(ValueError, match="expanding"):
        PostgresStatement.of(select(lanes).where(lanes.c.lane.in_(["x"])), dialect)


class Money(TypeDecorator[object]):
    impl = Numeric(12, 2)
    cache_ok = True


@pytest.mark.parametrize(
    "number", [Numeric(12, 2), Money(), ARRAY(Numeric(12, 2))], ids=["numeric", "wrapped", "array"]
)
def test_a_statement_reading_a_number_leaves_its_rows_to_sqlalchemy(number: object) -> None:
    """A number's reading depends on the type the server reports, which asyncpg's rows do
    not carry: no readers (`rows` refuses, `fetch` still runs), whatever the number is inside."""
    dialect = asyncpg.dialect()
    table = Table("priced", MetaData(), Column("id", Integer, primary_key=True), Column("price", number))
    statement = PostgresStatement.of(select(table), dialect)
    assert statement.readers is None
    assert PostgresStatement.of(select(table.c.id), dialect).readers == (None,)


@pytest.mark.parametrize("url", ["postgresql://u:p@db/x", "postgresql+psycopg://u:p@db/x", "mysql+aiomysql://u:p@db/x"])
def test_a_database_other_than_sqlite_or_postgresql_through_asyncpg_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="postgresql\\+asyncpg"):
        create_engine(url)
