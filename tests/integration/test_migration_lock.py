"""Migrations run once per version however many instances start together, and a migration
that cannot go on fails clearly instead of hanging (issue 18.2): on PostgreSQL `migrate`
takes an advisory lock of the service's own, waiting at most
`UNIONHUB_DB_MIGRATION_LOCK_TIMEOUT_MS`, and its statements wait at most
`UNIONHUB_DB_LOCK_TIMEOUT_MS` for a table lock."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import membership.bootstrap
from tests.conftest import _pg_execute
from unionhub_runtime.database import create_engine
from unionhub_runtime.migrations import MigrationBlocked, lock_key, upgrade_async
from unionhub_runtime.settings import DatabaseTimeouts

pytestmark = pytest.mark.integration

MIGRATIONS = membership.bootstrap.MIGRATIONS


@pytest.fixture
async def empty(postgres_admin_url: str) -> AsyncIterator[str]:
    """A PostgreSQL database of its own, empty."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _pg_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    await _pg_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def revisions(url: str) -> tuple[str | None, str | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:

            async def one(table: str) -> str | None:
                exists = await connection.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})
                return await connection.scalar(text(f"SELECT version_num FROM {table}")) if exists else None

            return await one("alembic_version"), await one("alembic_version_runtime")
    finally:
        await engine.dispose()


async def test_instances_started_together_migrate_once_and_the_later_ones_find_nothing_to_do(
    empty: str, tmp_path: Path
) -> None:
    env = {**os.environ, "MEMBERSHIP_DATABASE_URL": empty, "MEMBERSHIP_LOG_LEVEL": "INFO"}
    logs = [tmp_path / f"migrate-{n}.log" for n in range(3)]
    processes = []
    for log in logs:  # three pods starting at once, each with `serve --migrate` (here: `migrate`)
        with log.open("w") as out:
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "membership", "migrate", env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    codes = [await asyncio.wait_for(p.wait(), 120) for p in processes]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0, 0], "\n".join(texts)
    ran = [t for t in texts if "Running upgrade" in t]
    assert len(ran) == 1, f"{len(ran)} instances applied revisions:\n" + "\n".join(texts)
    assert await revisions(empty) == ("0006", "r0001")


async def test_a_migration_waits_for_another_instances_and_gives_up_clearly_at_its_limit(empty: str) -> None:
    holder = await connect(empty)  # another instance, migrating
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", lock_key("membership"))
        began = time.monotonic()
        with pytest.raises(MigrationBlocked, match="another instance has been migrating membership"):
            await upgrade_async(
                MIGRATIONS, empty, timeouts=DatabaseTimeouts(migration_lock_timeout_ms=500), lock_name="membership"
            )
        assert 0.4 < time.monotonic() - began < 10
        assert await revisions(empty) == (None, None), "it changed the schema without the lock"
        waiting = asyncio.create_task(upgrade_async(MIGRATIONS, empty, lock_name="membership"))
        await asyncio.sleep(1.0)
        assert not waiting.done(), "it did not wait for the lock"
        await holder.execute("SELECT pg_advisory_unlock($1)", lock_key("membership"))
        await asyncio.wait_for(waiting, 60)
    finally:
        await holder.close()
    assert await revisions(empty) == ("0006", "r0001")


async def test_a_migration_blocked_by_a_running_transaction_fails_clearly_instead_of_stalling_the_table(
    empty: str,
) -> None:
    await upgrade_async(MIGRATIONS, empty, "0005")
    reader = await connect(empty)  # an old instance, inside a long transaction on `members`
    try:
        transaction = reader.transaction()
        await transaction.start()
        await reader.execute("SELECT count(*) FROM members")
        began = time.monotonic()
        with pytest.raises(MigrationBlocked, match="waited over 300 ms for a table lock"):
            await upgrade_async(MIGRATIONS, empty, timeouts=DatabaseTimeouts(lock_timeout_ms=300))
        assert time.monotonic() - began < 10
        await transaction.rollback()
    finally:
        await reader.close()
    assert (await revisions(empty))[0] == "0005", "the blocked revision was half applied"
    await upgrade_async(MIGRATIONS, empty)  # run again: it goes through
    assert await revisions(empty) == ("0006", "r0001")


def test_each_service_has_a_lock_of_its_own_apart_from_the_other_advisory_locks() -> None:
    keys = {lock_key(name) for name in ("membership", "evaluation", "feedback")}
    assert len(keys) == 3
    assert all(2**32 < key < 2**63 for key in keys)  # the timers' keys are crc32s (below 2**32)


def server_keepalive_seconds(server_port: int, client_port: int) -> float | None:
    """The keepalive timer of the server's socket to `client_port` (`ss -o`), in seconds;
    None when this machine does not see that socket."""
    shown = subprocess.run(
        ["ss", "-tnoH", "state", "established", f"( sport = :{server_port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?(?:(\d+)ms)?", shown)
    if found is None:
        return None
    minutes, seconds, millis = (int(part or 0) for part in found.groups())
    return minutes * 60 + seconds + millis / 1000


async def test_the_lock_of_a_runner_whose_node_vanished_is_freed_within_a_minute(empty: str) -> None:
    """The advisory lock lives as long as its session: a runner on a node that vanished (no
    FIN, no RST) would keep it for the kernel's default two hours of silence, and every
    later migration would give up. The lock's session asks the server to probe its peer
    after 30 s of silence."""
    await upgrade_async(MIGRATIONS, empty, "0005")
    reader = await connect(empty)  # keeps the migration (and so the lock) waiting a while
    observer = await connect(empty)  # outside the reader's transaction (its view of the sessions is a snapshot)
    try:
        transaction = reader.transaction()
        await transaction.start()
        await reader.execute("SELECT count(*) FROM members")
        migrating = asyncio.create_task(
            upgrade_async(MIGRATIONS, empty, timeouts=DatabaseTimeouts(lock_timeout_ms=20_000))
        )
        port = None
        for _ in range(100):
            port = await observer.fetchval(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
            )
            if port is not None:
                break
            await asyncio.sleep(0.1)
        assert port is not None and port > 0, "no session holds the migration lock over TCP"
        assert shutil.which("ss"), "`ss` (iproute2) reads the server socket's keepalive timer"
        server_port = make_url(empty).port or 5432
        keepalive = server_keepalive_seconds(server_port, port)
        assert keepalive is not None, (
            "the server's socket is not visible here (PostgreSQL in another network namespace?): "
            "this test needs the local server `make test` starts"
        )
        assert keepalive <= 30, f"the server probes the lock's peer after {keepalive} s"
        await transaction.rollback()
        await asyncio.wait_for(migrating, 60)
    finally:
        await reader.close()
        await observer.close()
    assert await revisions(empty) == ("0006", "r0001")
