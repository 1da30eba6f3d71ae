"""Evaluation's tables, the shared inbox and outbox, and its view of membership."""

from sqlalchemy import MetaData

from unionhub_runtime.membership_view import add_membership_view
from unionhub_runtime.tables import add_runtime_tables

metadata = MetaData()
runtime_tables = add_runtime_tables(metadata)
membership_view = add_membership_view(metadata)
