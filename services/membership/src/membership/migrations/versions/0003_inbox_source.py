"""the inbox keys on source + id (CloudEvents identity)

Revision ID: 0003
Revises: 0002
"""

from unionhub_runtime.migrations import key_inbox_by_id, key_inbox_by_source

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key_inbox_by_source()


def downgrade() -> None:
    key_inbox_by_id()
