"""a member's reason for leaving kept in membership (no longer published in member.left)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("members", sa.Column("left_reason", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:  # SQLite rebuilds the table to drop a column
        batch.drop_column("left_reason")
