"""The pool checks a PostgreSQL connection before a check-out only when it was idle for
`PING_AFTER_IDLE_SECONDS` (a round trip saved a batch and a relay round under load): one
that a quiet period left idle and the server dropped is replaced unseen; one that died
moments after its last use fails its first statement as a disconnect, which drops the pool,
and the next try connects afresh (the readiness probe makes that try itself)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import _pg_execute
from unionhub_runtime import database
from unionhub_runtime.database import create_engine, session_factory

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("databases", ["postgresql"], indirect=True)]

BACKEND = text("SELECT pg_backend_pid()")


@contextlib.asynccontextmanager
async def _pool_killed(database_url: str, connections: int = 1) -> AsyncIterator[tuple[AsyncEngine, list[int]]]:
    """An engine whose pool holds `connections` connections, just checked in, whose server
    processes were then ended; and their pids."""
    engine = create_engine(database_url, pool_size=connections, max_overflow=0)
    try:
        async with contextlib.AsyncExitStack() as stack:
            opened = [await stack.enter_async_context(session_factory(engine)()) for _ in range(connections)]
            pids = [(await session.execute(BACKEND)).scalar_one() for session in opened]
        for pid in pids:
            await _pg_execute(database_url, f"SELECT pg_terminate_backend({pid})")
        await asyncio.sleep(0.1)  # the server has closed them
        yield engine, pids
    finally:
        await engine.dispose()


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.2)
    async with _pool_killed(database_url) as (engine, pids):
        await asyncio.sleep(0.2)
        async with session_factory(engine)() as session:
            assert (await session.execute(BACKEND)).scalar_one() not in pids


async def test_connections_that_died_moments_after_their_use_fail_one_statement_as_a_disconnect(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first failure drops the whole pool: the other dead connection is replaced unseen."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    async with _pool_killed(database_url, connections=2) as (engine, pids):
        sessions = session_factory(engine)
        with pytest.raises(DBAPIError) as caught:
            async with sessions() as session:
                await session.execute(BACKEND)
        assert caught.value.connection_invalidated  # what the pipeline retries a batch for
        async with sessions() as first, sessions() as second:
            now = {(await s.execute(BACKEND)).scalar_one() for s in (first, second)}
        assert not now & set(pids)


async def test_the_readiness_probe_is_not_failed_by_a_connection_that_died_moments_ago(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    async with _pool_killed(database_url) as (engine, _):
        assert await database.ping(engine)
