"""the runtime's tables get a history of their own

Until this revision each service's history created and changed the inbox, the outbox and
the held commands itself (the same revision three times). From here on a change to them is
one revision in this history, applied to every service's database after its own. A
database whose service history made them already (every database so far) has nothing to
do; one without them (a new service) gets them here, as they are at this revision.

Revision ID: r0001
Revises:
"""

from alembic import op
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)

from unionhub_runtime.columns import UtcInstant

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def _tables() -> MetaData:
    """The runtime's tables as they are at this revision (frozen: later revisions change them)."""
    metadata = MetaData()
    Table("inbox", metadata,
          Column("consumer", String(64), nullable=False), Column("source", String(512), nullable=False),
          Column("message_id", String(256), nullable=False), Column("received_at", UtcInstant(), nullable=False),
          PrimaryKeyConstraint("consumer", "source", "message_id", name="inbox_by_source_pkey"),
          Index("ix_inbox_received_at", "received_at", postgresql_using="brin"))
    Table("outbox", metadata,
          Column("id", _BIG_ID, primary_key=True, autoincrement=True),
          Column("event_id", String(64), nullable=False, unique=True), Column("topic", String(128), nullable=False),
          Column("event_type", String(128), nullable=False), Column("key", String(256), nullable=True),
          Column("value", LargeBinary, nullable=False), Column("traceparent", String(128), nullable=True),
          Column("created_at", UtcInstant(), nullable=False), Column("published_at", UtcInstant(), nullable=True),
          Index("ix_outbox_unpublished", "published_at", "id"))
    Table("held_commands", metadata,
          Column("seq", _BIG_ID, primary_key=True, autoincrement=True),
          Column("consumer", String(64), nullable=False), Column("source", String(512), nullable=False),
          Column("message_id", String(256), nullable=False), Column("type", String(128), nullable=False),
          Column("value", LargeBinary, nullable=False), Column("traceparent", String(128), nullable=True),
          Column("waiting_for", Text, nullable=True), Column("held_at", UtcInstant(), nullable=False),
          Column("expires_at", UtcInstant(), nullable=False),
          UniqueConstraint("consumer", "source", "message_id", name="uq_held_commands_message"),
          Index("ix_held_commands_waiting_for", "waiting_for"))
    Table("held_lanes", metadata, Column("lane", Text, nullable=False), Column("seq", _BIG_ID, nullable=False),
          PrimaryKeyConstraint("lane", "seq"))
    return metadata


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(inspect(bind).get_table_names())
    metadata = _tables()
    missing = [table for name, table in metadata.tables.items() if name not in existing]
    metadata.create_all(bind, tables=missing)


def downgrade() -> None:
    pass  # the tables stay: the service's own history made them on every database so far
