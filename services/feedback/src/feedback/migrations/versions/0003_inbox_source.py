"""the inbox keys on source + id (CloudEvents identity); opinions keep their command's source

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from unionhub_runtime.migrations import key_inbox_by_id, key_inbox_by_source

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key_inbox_by_source()
    for table in ("opinions", "parked_opinions"):
        op.add_column(table, sa.Column("command_source", sa.String(length=512), nullable=True))


def downgrade() -> None:
    for table in ("opinions", "parked_opinions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("command_source")
    key_inbox_by_id()
