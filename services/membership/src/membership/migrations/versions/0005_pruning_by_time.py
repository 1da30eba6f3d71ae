"""the inbox pruned by the time its messages were received

Revision ID: 0005
Revises: 0004
"""

from unionhub_runtime.migrations import drop_inbox_time_index, index_inbox_by_time

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_inbox_by_time()


def downgrade() -> None:
    drop_inbox_time_index()
