"""work items keep only what deduplicates them

Revision ID: 0007
Revises: 0006

A work item's month, post, worker and score are added to its worker month in the transaction
that stores its id; nothing ever read them back from `work_items`, and writing them cost more
than everything else stored per item (bench/README.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_DROPPED = ("month", "post_id", "worker_id", "score_milli")


def upgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        for column in _DROPPED:
            batch.drop_column(column)


def downgrade() -> None:
    # The values are gone: rows kept from before read back as unknown ("" and 0).
    with op.batch_alter_table("work_items") as batch:
        batch.add_column(sa.Column("month", sa.String(7), nullable=False, server_default=""))
        batch.add_column(sa.Column("post_id", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("worker_id", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("score_milli", sa.Integer(), nullable=False, server_default="0"))
