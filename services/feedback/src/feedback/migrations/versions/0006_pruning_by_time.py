"""the inbox pruned by the time its messages were received

Revision ID: 0006
Revises: 0005
"""

from unionhub_runtime.migrations import drop_inbox_time_index, index_inbox_by_time

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_inbox_by_time()


def downgrade() -> None:
    drop_inbox_time_index()
