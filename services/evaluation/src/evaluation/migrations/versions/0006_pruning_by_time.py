"""the inbox and work items pruned by the time they were received

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.migrations import drop_inbox_time_index, index_inbox_by_time

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_inbox_by_time()
    # Work items are deduplicated by item_id while a redelivery may bring them back. The
    # database stamps each row (the bulk insert stays as it is); rows already there count as
    # received now. SQLite cannot add a column with a non-constant default: it rebuilds.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("work_items", recreate="always" if sqlite else "auto") as batch:
        batch.add_column(sa.Column("received_at", UtcInstant(), nullable=False, server_default=sa.func.now()))
    op.create_index("ix_work_items_received_at", "work_items", ["received_at"], postgresql_using="brin")


def downgrade() -> None:
    op.drop_index("ix_work_items_received_at", table_name="work_items")
    with op.batch_alter_table("work_items") as batch:
        batch.drop_column("received_at")
    drop_inbox_time_index()
