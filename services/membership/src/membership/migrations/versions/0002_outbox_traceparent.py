"""outbox keeps the trace context of each event

Revision ID: 0002
Revises: 0001
"""

from unionhub_runtime.migrations import add_outbox_traceparent, drop_outbox_traceparent

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_traceparent()


def downgrade() -> None:
    drop_outbox_traceparent()
