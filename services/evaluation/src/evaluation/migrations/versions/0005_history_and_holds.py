"""the membership view keeps history; ratings waiting for membership become held commands

Revision ID: 0005
Revises: 0004
"""

import json

import sqlalchemy as sa
from alembic import op

from unionhub_runtime.migrations import add_membership_history, drop_membership_history, hold_waiting_rows

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
           "submitted_at": _iso(r["submitted_at"])},
        "waiting_for": f"member:{r['rater_id']}", "expires_at": _aware(r["deadline"]),
        "lanes": [f"rating:{r['campaign_id']}/{r['home_id']}/{r['rater_kind']}/{r['rater_id']}",
                  f"campaign:{r['campaign_id']}"],
    } for r in rows])
    op.drop_table("pending_ratings")


def _aware(value):  # SQLite gives naive UTC
    from datetime import UTC, datetime
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value) -> str:
    return _aware(value).isoformat()


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
