"""Alembic, driven from code: each service keeps its own migration history, and the
runtime's tables (inbox, outbox, held commands) one of their own (`schema/`), applied to
every service's database after the service's, with its own version table.

Instances started together (`serve --migrate` in each pod, or a Job beside them) migrate
once: on PostgreSQL the whole upgrade runs under an advisory lock, one key per service; the
first instance to take it applies what is missing, the next find the schema at head and do
nothing. Waiting has limits, so a blocked migration fails clearly instead of hanging (see
`upgrade`). SQLite is one process's file: no lock."""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, make_url

from .database import create_engine, is_lock_timeout
from .settings import DatabaseTimeouts

log = logging.getLogger(__name__)

RUNTIME_HISTORY = Path(__file__).parent / "schema"
RUNTIME_VERSION_TABLE = "alembic_version_runtime"


LOCK_SESSION_KEEPALIVES = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms: also when what the server sent is never acknowledged
}


class MigrationBlocked(RuntimeError):
    """A migration waited past its limit: for another instance's migration, or for a table
    lock held by running transactions. Nothing was changed by the statement that waited."""


def config(
    script_location: Path, url: str, version_table: str = "alembic_version", timeouts: DatabaseTimeouts | None = None
) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("version_table", version_table)
    cfg.attributes["timeouts"] = timeouts  # the PostgreSQL sessions' limits (`run_env`)
    return cfg


def lock_key(name: str) -> int:
    """The advisory lock key of service `name`'s migrations: fixed, and apart from the outbox
    relay's and the timers' keys (the high half spells "migr")."""
    return (0x6D696772 << 32) | zlib.crc32(name.encode())


def upgrade(
    script_location: Path,
    url: str,
    revision: str = "head",
    *,
    timeouts: DatabaseTimeouts | None = None,
    lock_name: str | None = None,
) -> None:
    """Migrates the database at `url` (blocking; runs its own event loop): the service's
    history to `revision`, then, at head, the runtime's.

    On PostgreSQL under the advisory lock `lock_key(lock_name)` (by default the name of the
    directory holding `script_location`: the service's package). Raises `MigrationBlocked`
    after waiting `timeouts.migration_lock_timeout_ms` for that lock (another instance still
    migrating), or when one of the migration's statements waited `timeouts.lock_timeout_ms`
    for a table lock: an ALTER TABLE queued behind a long transaction would otherwise stall
    every query on that table behind it. Statements themselves have no time limit (a data
    migration may take long)."""
    timeouts = timeouts or DatabaseTimeouts()
    if make_url(url).get_backend_name() != "postgresql":
        _apply(script_location, url, revision, None)
        return
    ddl = DatabaseTimeouts(
        lock_timeout_ms=timeouts.lock_timeout_ms, statement_timeout_ms=0, idle_in_transaction_timeout_ms=0
    )
    wait = DatabaseTimeouts(
        lock_timeout_ms=timeouts.migration_lock_timeout_ms, statement_timeout_ms=0, idle_in_transaction_timeout_ms=0
    )
    name = lock_name or script_location.parent.name
    asyncio.run(_locked(lambda: _apply(script_location, url, revision, ddl), url, name, wait))


async def upgrade_async(
    script_location: Path,
    url: str,
    revision: str = "head",
    *,
    timeouts: DatabaseTimeouts | None = None,
    lock_name: str | None = None,
) -> None:
    """`upgrade` from inside a running event loop."""
    await asyncio.to_thread(upgrade, script_location, url, revision, timeouts=timeouts, lock_name=lock_name)


def _apply(script_location: Path, url: str, revision: str, timeouts: DatabaseTimeouts | None) -> None:
    try:
        command.upgrade(config(script_location, url, timeouts=timeouts), revision)
        if revision in ("head", "heads"):
            command.upgrade(config(RUNTIME_HISTORY, url, RUNTIME_VERSION_TABLE, timeouts), "head")
    except Exception as exc:
        if timeouts is not None and is_lock_timeout(exc):
            raise MigrationBlocked(
                f"a migration statement waited over {timeouts.lock_timeout_ms} ms for a table lock held by "
                f"running transactions, and was cancelled (UNIONHUB_DB_LOCK_TIMEOUT_MS); run it again"
            ) from exc
        raise


async def _locked(apply: Any, url: str, name: str, wait: DatabaseTimeouts) -> None:
    """Runs `apply` (in a thread: alembic runs an event loop of its own) holding the
    session-level advisory lock of `name`'s migrations on a connection of its own."""
    key = lock_key(name)
    engine = create_engine(url, timeouts=wait, pool_size=1)
    try:
        async with engine.connect() as connection:
            # The lock lives as long as this session: should this runner's node vanish (no FIN,
            # no RST), the server would keep it for the kernel's two hours of silence, and every
            # later migration would give up. Probe the peer after 30 s, give up after ~60 s.
            for setting, value in LOCK_SESSION_KEEPALIVES.items():
                await connection.execute(text(f"SET {setting} = {value}"))
            began = time.monotonic()
            try:
                await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except Exception as exc:
                if is_lock_timeout(exc):
                    raise MigrationBlocked(
                        f"another instance has been migrating {name}'s database for over "
                        f"{wait.lock_timeout_ms} ms (advisory lock {key}; UNIONHUB_DB_MIGRATION_LOCK_TIMEOUT_MS)"
                    ) from exc
                raise
            await connection.commit()  # the lock is the session's: it outlives this transaction
            if (waited := time.monotonic() - began) > 1:
                log.info("waited %.1f s for another instance's migration of %s", waited, name)
            try:
                await asyncio.to_thread(apply)
            finally:
                with suppress(Exception):  # else it ends with the session, closed below
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    await connection.commit()
    finally:
        await engine.dispose()


def run_env(metadata: MetaData, *, its_tables_only: bool = False) -> None:
    """The body of an `env.py`: online migrations over the async engine. Autogenerate leaves
    both histories' version tables alone, and, with `its_tables_only` (the runtime's history,
    whose metadata is only the runtime's tables), every table the metadata does not declare."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    version_table = context.config.get_main_option("version_table") or "alembic_version"

    def include_name(name: str | None, kind: str, _parents: object) -> bool:
        if kind != "table":
            return True
        if name in ("alembic_version", RUNTIME_VERSION_TABLE):
            return False
        return not its_tables_only or name in metadata.tables

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            version_table=version_table,
            include_name=include_name,
        )
        newer = set(context.get_context().get_current_heads()) - {r.revision for r in context.script.walk_revisions()}
        if newer:
            # A newer version migrated this database (rolled out, or rolled back from): its
            # migrations only add what this code ignores, so there is nothing to do here (the
            # readiness check agrees: `readiness._History.reached`). Failing would fail the
            # older version's Job and `serve --migrate` on every rollback.
            log.warning(
                "schema is ahead of this version (%s at %s, unknown here): nothing to migrate",
                version_table,
                ", ".join(sorted(newer)),
            )
            return
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_engine(url, timeouts=context.config.attributes.get("timeouts"))
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def add_outbox_traceparent() -> None:
    """Revision body shared by every service: the outbox keeps each event's trace context."""
    from alembic import op
    from sqlalchemy import Column, String

    op.add_column("outbox", Column("traceparent", String(128), nullable=True))


def drop_outbox_traceparent() -> None:
    from alembic import op

    with op.batch_alter_table("outbox") as batch:  # SQLite rebuilds the table to drop a column
        batch.drop_column("traceparent")


def key_inbox_by_source() -> None:
    """Revision body shared by every service: the inbox keys on (consumer, source, id).

    Rows already there get the source '' (unknown), which `inbox.claim` takes to stand for
    their id from any source: a message applied before the upgrade is never applied again.
    The table is rebuilt because SQLite cannot change a primary key in place.
    """
    from alembic import op
    from sqlalchemy import Column, PrimaryKeyConstraint, String

    from .columns import UtcInstant

    op.rename_table("inbox", "inbox_by_id")
    op.create_table(
        "inbox",
        Column("consumer", String(64), nullable=False),
        Column("source", String(512), nullable=False),
        Column("message_id", String(256), nullable=False),
        Column("received_at", UtcInstant(), nullable=False),
        PrimaryKeyConstraint("consumer", "source", "message_id", name="inbox_by_source_pkey"),
    )
    op.execute(
        "INSERT INTO inbox (consumer, source, message_id, received_at) "
        "SELECT consumer, '', message_id, received_at FROM inbox_by_id"
    )
    op.drop_table("inbox_by_id")


def key_inbox_by_id() -> None:
    """Downgrade of `key_inbox_by_source`: one row per id (the first source's)."""
    from alembic import op
    from sqlalchemy import Column, PrimaryKeyConstraint, String

    from .columns import UtcInstant

    op.rename_table("inbox", "inbox_by_source")
    op.create_table(
        "inbox",
        Column("consumer", String(64), nullable=False),
        Column("message_id", String(256), nullable=False),
        Column("received_at", UtcInstant(), nullable=False),
        PrimaryKeyConstraint("consumer", "message_id", name="inbox_by_id_pkey"),
    )
    op.execute(
        "INSERT INTO inbox (consumer, message_id, received_at) "
        "SELECT consumer, message_id, MIN(received_at) FROM inbox_by_source GROUP BY consumer, message_id"
    )
    op.drop_table("inbox_by_source")


def add_held_tables() -> None:
    """Revision body shared by every service: commands held until their prerequisite is applied."""
    from alembic import op
    from sqlalchemy import (
        BigInteger,
        Column,
        Integer,
        LargeBinary,
        PrimaryKeyConstraint,
        String,
        Text,
        UniqueConstraint,
    )

    from .columns import UtcInstant

    big_id = BigInteger().with_variant(Integer(), "sqlite")
    op.create_table(
        "held_commands",
        Column("seq", big_id, primary_key=True, autoincrement=True),
        Column("consumer", String(64), nullable=False),
        Column("source", String(512), nullable=False),
        Column("message_id", String(256), nullable=False),
        Column("type", String(128), nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("traceparent", String(128), nullable=True),
        Column("waiting_for", Text, nullable=True),
        Column("held_at", UtcInstant(), nullable=False),
        Column("expires_at", UtcInstant(), nullable=False),
        UniqueConstraint("consumer", "source", "message_id", name="uq_held_commands_message"),
    )
    op.create_index("ix_held_commands_waiting_for", "held_commands", ["waiting_for"])
    op.create_table(
        "held_lanes",
        Column("lane", Text, nullable=False),
        Column("seq", big_id, nullable=False),
        PrimaryKeyConstraint("lane", "seq"),
    )


def drop_held_tables() -> None:
    from alembic import op

    op.drop_table("held_lanes")
    op.drop_index("ix_held_commands_waiting_for", table_name="held_commands")
    op.drop_table("held_commands")


def stored_instant(value: datetime | str) -> datetime:
    """An instant read with plain SQL in a migration: SQLite gives naive UTC (as text)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def hold_waiting_rows(rows: list[dict[str, Any]]) -> None:
    """Moves commands a service kept waiting in a table of its own into `held_commands`, so
    the upgrade loses none. Each row: consumer, source, id, type, data (JSON-ready),
    waiting_for, expires_at (aware), lanes (list)."""
    import orjson
    from alembic import op
    from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, insert

    from .columns import UtcInstant

    metadata = MetaData()  # the columns this revision writes, as they are at this revision
    held = Table(
        "held_commands",
        metadata,
        Column("seq", BigInteger().with_variant(Integer(), "sqlite")),
        *(Column(n, String) for n in ("consumer", "source", "message_id", "type", "waiting_for")),
        Column("value", LargeBinary),
        Column("held_at", UtcInstant()),
        Column("expires_at", UtcInstant()),
    )
    lanes = Table("held_lanes", metadata, Column("lane", String), Column("seq", BigInteger()))
    bind = op.get_bind()
    now = datetime.now(UTC)
    for row in rows:
        value = orjson.dumps(
            {
                "specversion": "1.0",
                "id": row["id"],
                "source": row["source"],
                "type": row["type"],
                "datacontenttype": "application/json",
                "data": row["data"],
            }
        )
        seq = bind.execute(
            insert(held)
            .values(
                consumer=row["consumer"],
                source=row["source"],
                message_id=row["id"],
                type=row["type"],
                value=value,
                waiting_for=row["waiting_for"],
                held_at=now,
                expires_at=row["expires_at"],
            )
            .returning(held.c.seq)
        ).scalar_one()
        for lane in row["lanes"]:
            bind.execute(insert(lanes).values(lane=lane, seq=seq))


def index_inbox_by_time() -> None:
    """Revision body shared by every service: the inbox is pruned by `received_at`."""
    from alembic import op

    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], postgresql_using="brin")


def drop_inbox_time_index() -> None:
    from alembic import op

    op.drop_index("ix_inbox_received_at", table_name="inbox")
