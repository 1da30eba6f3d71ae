"""the membership view keeps history; ratings waiting for membership become held commands

Revision ID: 0005
Revises: 0004
"""

import json

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
        "SELECT command_id, campaign_id, home_id, rater_kind, rater_id, scores, submitted_at, deadline "
        "FROM pending_ratings ORDER BY submitted_at, command_id")).mappings().all()
    hold_waiting_rows([{
        "consumer": "evaluation.commands", "source": MIGRATED, "id": r["command_id"], "type": "rating.submit",
        "data": {k: r[k] for k in ("campaign_id", "home_id", "rater_kind", "rater_id")}
        | {"scores": r["scores"] if isinstance(r["scores"], dict) else json.loads(r["scores"]),
           "submitted_at": stored_instant(r["submitted_at"]).isoformat()},
        "waiting_for": f"member:{r['rater_id']}", "expires_at": stored_instant(r["deadline"]),
        "lanes": [f"rating:{r['campaign_id']}/{r['home_id']}/{r['rater_kind']}/{r['rater_id']}",
                  f"campaign:{r['campaign_id']}"],
    } for r in rows])
    op.drop_table("pending_ratings")


def downgrade() -> None:
    op.create_table(
        "pending_ratings",
        sa.Column("command_id", sa.String(256), primary_key=True),
        sa.Column("campaign_id", sa.String(128), nullable=False, index=True),
        sa.Column("home_id", sa.String(128), nullable=False, index=True),
        sa.Column("rater_kind", sa.String(16), nullable=False),
        sa.Column("rater_id", sa.String(128), nullable=False, index=True),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    drop_membership_history()
