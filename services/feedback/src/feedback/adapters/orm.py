"""Feedback's tables, the shared inbox and outbox, and its view of membership."""

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

from unionhub_membership_view import add_membership_view
from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.tables import add_runtime_tables

metadata = MetaData()
runtime_tables = add_runtime_tables(metadata)
membership_view = add_membership_view(metadata)
_ID = String(128)

opinions = Table(
    "opinions",
    metadata,
    Column("opinion_id", _ID, primary_key=True),
    Column("member_id", _ID, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("submitted_at", UtcInstant(), nullable=False),
    Column("campaign_id", _ID, nullable=True),
    Column("home_id", _ID, nullable=True),
    Column("category", String(100), nullable=True),
    Column("union_id", _ID, nullable=False),
    Column("due_at", UtcInstant(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("responder_id", _ID, nullable=True),
    Column("response_text", Text, nullable=True),
    Column("responded_at", UtcInstant(), nullable=True),
    Column("response_seconds", Float, nullable=True),
    Column("satisfaction", Integer, nullable=True),
    Column("overdue", Boolean, nullable=False),
    Column("command_id", String(256), nullable=True),
    Column("command_source", String(512), nullable=True),
    Index("ix_opinions_union_submitted", "union_id", "submitted_at"),
    Index("ix_opinions_open_due", "status", "overdue", "due_at"),
)

visits = Table(
    "visits",
    metadata,
    Column("visit_id", _ID, primary_key=True),
    Column("cadre_id", _ID, nullable=False),
    Column("place", String(32), nullable=False),
    Column("visited_at", UtcInstant(), nullable=False),
    Column("month", String(7), nullable=False),
    Column("opinions_collected", Integer, nullable=False),
    Index("ix_visits_month_cadre", "month", "cadre_id"),
)

closed_visit_months = Table(
    "closed_visit_months",
    metadata,
    Column("month", String(7), primary_key=True),
)

stream_clock = Table(
    "stream_clock",
    metadata,
    # The latest business time seen (submitted, responded, visited): "now" for a replay.
    Column("name", String(16), primary_key=True),
    Column("at", UtcInstant(), nullable=False),
)
