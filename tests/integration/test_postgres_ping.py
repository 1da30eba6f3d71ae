"""The pool checks a PostgreSQL connection before a check-out only when it was idle for
`PING_AFTER_IDLE_SECONDS` (a round trip saved a batch and a relay round under load): one
that a quiet period left idle and the server dropped is replaced unseen; one that died
moments after its last use fails its first statement as a disconnect, which drops the pool,
and the next try connects afresh."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import _pg_execute
from unionhub_runtime import database
from unionhub_runtime.database import create_engine, session_factory

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("databases", ["postgresql"], indirect=True)]

BACKEND = text("SELECT pg_backend_pid()")


async def _pooled_backends(database_url: str, connections: int = 1) -> tuple[AsyncEngine, list[int]]:
    """An engine whose pool holds `connections` connections, just checked in; their server pids."""
    engine = create_engine(database_url, pool_size=connections, max_overflow=0)
    sessions = session_factory(engine)
    async with contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(sessions()) for _ in range(connections)]
        pids = [(await session.execute(BACKEND)).scalar_one() for session in opened]
    return engine, pids


async def _terminate(database_url: str, pids: list[int]) -> None:
    for pid in pids:
        await _pg_execute(database_url, f"SELECT pg_terminate_backend({pid})")


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine, pids = await _pooled_backends(database_url)
    try:
        await _terminate(database_url, pids)
        await asyncio.sleep(0.3)
        async with session_factory(engine)() as session:
            assert (await session.execute(BACKEND)).scalar_one() not in pids
    finally:
        await engine.dispose()


async def test_connections_that_died_moments_after_their_use_fail_one_statement_as_a_disconnect(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first failure drops the whole pool: the other dead connection is replaced unseen."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine, pids = await _pooled_backends(database_url, connections=2)
    sessions = session_factory(engine)
    try:
        await _terminate(database_url, pids)
        await asyncio.sleep(0.1)  # the server has closed them
        with pytest.raises(DBAPIError) as caught:
            async with sessions() as session:
                await session.execute(BACKEND)
        assert caught.value.connection_invalidated  # what the pipeline retries a batch for
        async with sessions() as first, sessions() as second:
            now = {(await s.execute(BACKEND)).scalar_one() for s in (first, second)}
        assert not now & set(pids)
    finally:
        await engine.dispose()


async def test_the_readiness_probe_is_not_failed_by_a_connection_that_died_moments_ago(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine, pids = await _pooled_backends(database_url)
    try:
        await _terminate(database_url, pids)
        await asyncio.sleep(0.1)
        assert await database.ping(engine)
    finally:
        await engine.dispose()
