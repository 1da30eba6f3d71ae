"""The pool checks a PostgreSQL connection before a check-out only when it was idle for
`PING_AFTER_IDLE_SECONDS` (a round trip saved a batch and a relay round under load): one
that a quiet period left idle and the server dropped is replaced unseen; one that died
moments after its last use fails its first statement as a disconnect, which drops the pool,
and the next try connects afresh."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import _pg_execute
from unionhub_runtime import database
from unionhub_runtime.database import create_engine, session_factory

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("databases", ["postgresql"], indirect=True)]

BACKEND = text("SELECT pg_backend_pid()")


async def _backend_of_the_pooled_connection(database_url: str) -> tuple[AsyncEngine, int]:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    async with session_factory(engine)() as session:
        pid = (await session.execute(BACKEND)).scalar_one()
    return engine, pid


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine, pid = await _backend_of_the_pooled_connection(database_url)
    try:
        await _pg_execute(database_url, f"SELECT pg_terminate_backend({pid})")
        await asyncio.sleep(0.3)
        async with session_factory(engine)() as session:
            assert (await session.execute(BACKEND)).scalar_one() != pid
    finally:
        await engine.dispose()


async def test_a_connection_that_died_moments_after_its_use_fails_once_as_a_disconnect(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    engine, pid = await _backend_of_the_pooled_connection(database_url)
    sessions = session_factory(engine)
    try:
        await _pg_execute(database_url, f"SELECT pg_terminate_backend({pid})")
        await asyncio.sleep(0.1)  # the server has closed it
        with pytest.raises(DBAPIError) as caught:
            async with sessions() as session:
                await session.execute(BACKEND)
        assert caught.value.connection_invalidated  # what the pipeline retries a batch for
        async with sessions() as session:
            assert (await session.execute(BACKEND)).scalar_one() != pid
    finally:
        await engine.dispose()
