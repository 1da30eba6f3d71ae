"""the membership view keeps history; opinions waiting for membership become held commands

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from unionhub_membership_view.migrations import add_membership_history, drop_membership_history
from unionhub_runtime.migrations import (
    hold_waiting_rows,
    stored_instant,
)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MIGRATED = "urn:unionhub:migrated"  # the source of a command kept before sources were


def upgrade() -> None:
    add_membership_history()
    rows = op.get_bind().execute(sa.text(
        "SELECT * FROM parked_opinions ORDER BY submitted_at, opinion_id")).mappings().all()
    hold_waiting_rows([{
        "consumer": "feedback.commands", "source": r["command_source"] or MIGRATED, "id": r["command_id"],
        "type": "opinion.submit",
        "data": {k: r[k] for k in ("opinion_id", "member_id", "channel", "text", "campaign_id", "home_id", "category")
                 if r[k] is not None} | {"submitted_at": stored_instant(r["submitted_at"]).isoformat()},
        "waiting_for": f"member:{r['member_id']}", "expires_at": stored_instant(r["deadline"]),
        "lanes": [f"opinion_id:{r['opinion_id']}"],
    } for r in rows])
    op.drop_table("parked_opinions")


def downgrade() -> None:
    op.create_table(
        "parked_opinions",
        sa.Column("opinion_id", sa.String(128), primary_key=True),
        sa.Column("command_id", sa.String(256), nullable=False),
        sa.Column("command_source", sa.String(512), nullable=True),
        sa.Column("member_id", sa.String(128), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=True),
        sa.Column("home_id", sa.String(128), nullable=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
    )
    drop_membership_history()
