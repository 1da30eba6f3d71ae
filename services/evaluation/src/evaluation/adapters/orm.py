"""Evaluation's tables, the shared inbox and outbox, and its view of membership."""

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, MetaData, String, Table, func

from unionhub_membership_view import add_membership_view
from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.tables import add_runtime_tables

metadata = MetaData()
runtime_tables = add_runtime_tables(metadata)
membership_view = add_membership_view(metadata)
_ID = String(128)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", _ID, primary_key=True),
    Column("year", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("weights", JSON, nullable=False),
    Column("home_ids", JSON, nullable=False),
    Column("min_member_ratings", Integer, nullable=False),
    Column("star_thresholds", JSON, nullable=False),
    Column("status", String(8), nullable=False),
)

ratings = Table(
    "ratings",
    metadata,
    Column("campaign_id", _ID, primary_key=True),
    Column("home_id", _ID, primary_key=True),
    Column("rater_kind", String(16), primary_key=True),
    Column("rater_id", _ID, primary_key=True),
    Column("score_sum", Integer, nullable=False),  # value = score_sum / 5, kept exact
    Column("scores", JSON, nullable=False),
    Column("submitted_at", UtcInstant(), nullable=False),
    Column("command_id", String(256), nullable=False),
)

rating_audit = Table(
    "rating_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("command_id", String(256), nullable=False),
    Column("campaign_id", _ID, nullable=False),
    Column("home_id", _ID, nullable=False),
    Column("rater_kind", String(16), nullable=False),
    Column("rater_id", _ID, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", String(32), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("at", UtcInstant(), nullable=False),
    Index("ix_rating_audit_campaign", "campaign_id", "id"),
    Index("ix_rating_audit_command", "command_id"),
)

results = Table(
    "results",
    metadata,
    Column("campaign_id", _ID, primary_key=True),
    Column("home_id", _ID, primary_key=True),
    Column("composite", Float, nullable=True),
    Column("member_avg", Float, nullable=True),
    Column("unit_avg", Float, nullable=True),
    Column("superior_avg", Float, nullable=True),
    Column("member_ratings", Integer, nullable=False),
    Column("stars", Integer, nullable=False),
    Column("rank", Integer, nullable=True),
    Column("reason", String(500), nullable=True),
)

work_items = Table(
    "work_items",
    metadata,
    # An item counts once, whatever the redelivery; what it adds goes to its worker month.
    Column("item_id", _ID, primary_key=True),
    # Written by versions before 0007 only; dropped by a later release (see revision 0007).
    Column("month", String(7), nullable=True),
    Column("post_id", _ID, nullable=True),
    Column("worker_id", _ID, nullable=True),
    Column("score_milli", Integer, nullable=True),
    # Stamped by the database; pruned once no redelivery can bring the item back.
    Column("received_at", UtcInstant(), nullable=False, server_default=func.now()),
    Index("ix_work_items_received_at", "received_at", postgresql_using="brin"),
)

worker_months = Table(
    "worker_months",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("post_id", _ID, primary_key=True),
    Column("worker_id", _ID, primary_key=True),
    Column("item_count", Integer, nullable=False),  # not "items": that name is taken by Table.c.items()
    Column("score_sum", BigInteger, nullable=False),  # thousandths of a point
)

post_stars = Table(
    "post_stars",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("post_id", _ID, primary_key=True),
    Column("worker_id", _ID, nullable=False),
    Column("average", Float, nullable=False),
    Column("item_count", Integer, nullable=False),
)

studio_rewards = Table(
    "studio_rewards",
    metadata,
    Column("studio_id", _ID, primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("union_id", _ID, nullable=False),
    Column("grade", String(16), nullable=False),
    Column("value_created_cny", Float, nullable=False),
    Column("reward_cny", Integer, nullable=False),
)
