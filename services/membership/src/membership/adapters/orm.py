"""Membership's tables (plus the shared inbox and outbox) on one metadata."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, MetaData, String, Table

from unionhub_runtime.tables import add_runtime_tables

metadata = MetaData()
runtime_tables = add_runtime_tables(metadata)

unions = Table(
    "unions",
    metadata,
    Column("union_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("level", String(16), nullable=False),
    Column("parent_id", String(128), nullable=True),
    Column("district", String(200), nullable=True),
    Column("kind", String(16), nullable=True),
    Column("founded_on", Date, nullable=False),
    Index("ix_unions_district_founded", "district", "founded_on"),
    Index("ix_unions_parent", "parent_id"),
)

members = Table(
    "members",
    metadata,
    Column("member_id", String(128), primary_key=True),
    Column("union_id", String(128), nullable=False),
    Column("status", String(8), nullable=False),
    Column("joined_on", Date, nullable=False),
    Column("left_on", Date, nullable=True),
    Column("display_name", String(200), nullable=True),
    Column("left_reason", String(500), nullable=True),  # personal: never published
    Index("ix_members_union_status", "union_id", "status", "member_id"),
)

member_history = Table(
    "member_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("member_id", String(128), nullable=False),
    Column("union_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("on", Date, nullable=False),
    Index("ix_member_history_member", "member_id", "id"),
    Index("ix_member_history_union_kind_on", "union_id", "kind", "on"),
)

homes = Table(
    "homes",
    metadata,
    Column("home_id", String(128), primary_key=True),
    Column("union_id", String(128), nullable=False),
    Column("name", String(200), nullable=False),
    Column("category", String(16), nullable=False),
    Column("opened_on", Date, nullable=False),
    Index("ix_homes_union", "union_id"),
)

stations = Table(
    "stations",
    metadata,
    Column("station_id", String(128), primary_key=True),
    Column("union_id", String(128), nullable=False),
    Column("name", String(200), nullable=False),
    Column("services", String(200), nullable=False),  # comma-separated service names
    Column("opened_on", Date, nullable=False),
    Index("ix_stations_union", "union_id"),
)

cadres = Table(
    "cadres",
    metadata,
    Column("member_id", String(128), primary_key=True),
    Column("union_id", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("appointed_on", Date, nullable=False),
    Index("ix_cadres_union", "union_id"),
)
