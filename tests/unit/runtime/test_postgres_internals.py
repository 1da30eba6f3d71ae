"""`postgres_fetch` leans on private parts of SQLAlchemy's asyncpg adapter (pinned by
constraints.txt): an upgrade that renames one fails here, in seconds, not in production."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import Column, MetaData, String, Table, literal, select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.engine import Connection

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


@pytest.mark.parametrize("url", ["postgresql://u:p@db/x", "postgresql+psycopg://u:p@db/x", "mysql+aiomysql://u:p@db/x"])
def test_a_database_other_than_sqlite_or_postgresql_through_asyncpg_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="postgresql\\+asyncpg"):
        create_engine(url)
