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
    Text,
    UniqueConstraint,
)

from .columns import UtcInstant

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit key.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class RuntimeTables:
    inbox: Table
    outbox: Table
    held: Table
    held_lanes: Table


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
        Index("ix_inbox_received_at", "received_at", postgresql_using="brin"),  # pruning
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
    held, held_lanes = _held_tables(metadata)
    return RuntimeTables(inbox=inbox, outbox=outbox, held=held, held_lanes=held_lanes)


def _held_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Commands held until what they depend on is applied (`unionhub_runtime.holding`)."""
    held = Table(
        "held_commands",
        metadata,
        Column("seq", _BIG_ID, primary_key=True, autoincrement=True),  # arrival order
        Column("consumer", String(64), nullable=False),
        Column("source", String(512), nullable=False),
        Column("message_id", String(256), nullable=False),
        Column("type", String(128), nullable=False),
        Column("value", LargeBinary, nullable=False),  # the command, structured mode
        Column("traceparent", String(128), nullable=True),
        # The prerequisite it waits for; NULL while it only queues behind another held command.
        Column("waiting_for", Text, nullable=True),
        Column("held_at", UtcInstant(), nullable=False),  # since when it waits for `waiting_for`
        Column("expires_at", UtcInstant(), nullable=False),  # first held + the hold period
        UniqueConstraint("consumer", "source", "message_id", name="uq_held_commands_message"),
        Index("ix_held_commands_waiting_for", "waiting_for"),
    )
    lanes = Table(
        "held_lanes",
        metadata,
        # What a held command keeps later commands from overtaking (e.g. "member:m-7").
        Column("lane", Text, primary_key=True),
        Column("seq", _BIG_ID, primary_key=True),
    )
    return held, lanes
