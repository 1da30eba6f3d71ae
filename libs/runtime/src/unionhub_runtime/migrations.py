"""Alembic, driven from code: each service keeps its own migration history."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from .database import create_engine


def config(script_location: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(script_location: Path, url: str, revision: str = "head") -> None:
    """Migrates the database at `url` (blocking; runs its own event loop)."""
    command.upgrade(config(script_location, url), revision)


async def upgrade_async(script_location: Path, url: str, revision: str = "head") -> None:
    """`upgrade` from inside a running event loop."""
    await asyncio.to_thread(upgrade, script_location, url, revision)


def run_env(metadata: MetaData) -> None:
    """The body of a service's `env.py`: online migrations over the async engine."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_engine(url)
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
    from sqlalchemy import BigInteger, Column, Integer, LargeBinary, PrimaryKeyConstraint, String, UniqueConstraint

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
        Column("waiting_for", String(300), nullable=True),
        Column("held_at", UtcInstant(), nullable=False),
        Column("expires_at", UtcInstant(), nullable=False),
        UniqueConstraint("consumer", "source", "message_id", name="uq_held_commands_message"),
    )
    op.create_index("ix_held_commands_waiting_for", "held_commands", ["waiting_for"])
    op.create_table(
        "held_lanes",
        Column("lane", String(300), nullable=False),
        Column("seq", big_id, nullable=False),
        PrimaryKeyConstraint("lane", "seq"),
    )


def drop_held_tables() -> None:
    from alembic import op

    op.drop_table("held_lanes")
    op.drop_index("ix_held_commands_waiting_for", table_name="held_commands")
    op.drop_table("held_commands")
