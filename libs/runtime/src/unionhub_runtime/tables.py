"""The inbox and outbox tables every service's database has."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

from .columns import UtcInstant

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit key.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class RuntimeTables:
    inbox: Table
    outbox: Table


def add_runtime_tables(metadata: MetaData) -> RuntimeTables:
    """Declares `inbox` and `outbox` on the service's own metadata (one migration history)."""
    inbox = Table(
        "inbox",
        metadata,
        # eventuate-tram's received_messages: a duplicate key means "already applied".
        # CloudEvents identify a message by source + id: two senders may use one id.
        Column("consumer", String(64), primary_key=True),
        Column("source", String(512), primary_key=True),
        Column("message_id", String(256), primary_key=True),
        Column("received_at", UtcInstant(), nullable=False),
    )
    outbox = Table(
        "outbox",
        metadata,
        Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(128), nullable=False),
        Column("event_type", String(128), nullable=False),
        Column("key", String(256), nullable=True),
        Column("value", LargeBinary, nullable=False),
        # W3C trace context of the handling that caused the event (sent as a Kafka header).
        Column("traceparent", String(128), nullable=True),
        Column("created_at", UtcInstant(), nullable=False),
        Column("published_at", UtcInstant(), nullable=True),
        Index("ix_outbox_unpublished", "published_at", "id"),
    )
    return RuntimeTables(inbox=inbox, outbox=outbox)
