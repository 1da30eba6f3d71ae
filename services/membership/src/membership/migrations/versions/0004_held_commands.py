"""commands held until what they depend on is applied

Revision ID: 0004
Revises: 0003
"""

from unionhub_runtime.migrations import add_held_tables, drop_held_tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_held_tables()


def downgrade() -> None:
    drop_held_tables()
