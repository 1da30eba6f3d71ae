"""work items keep only what deduplicates them

Revision ID: 0007
Revises: 0006

A work item's month, post, worker and score are added to its worker month in the transaction
that stores its id; nothing ever read them back from `work_items`, and writing them cost more
than everything else stored per item (bench/README.md). This release stops writing them and
makes them optional; a later one drops them. Dropping them now would fail the instances of the
previous version still running during a rolling upgrade: they write them (docs/operations.md,
"Upgrades": a migration must not break the version before it).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_NO_LONGER_WRITTEN = {
    "month": sa.String(7),
    "post_id": sa.String(128),
    "worker_id": sa.String(128),
    "score_milli": sa.Integer(),
}


def upgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        for column, type_ in _NO_LONGER_WRITTEN.items():
            batch.alter_column(column, existing_type=type_, nullable=True)


def downgrade() -> None:
    # Rows written since have none of these values: they read back as unknown ("" and 0).
    op.execute(
        "UPDATE work_items SET month = coalesce(month, ''), post_id = coalesce(post_id, ''), "
        "worker_id = coalesce(worker_id, ''), score_milli = coalesce(score_milli, 0)"
    )
    with op.batch_alter_table("work_items") as batch:
        for column, type_ in _NO_LONGER_WRITTEN.items():
            batch.alter_column(column, existing_type=type_, nullable=False)
