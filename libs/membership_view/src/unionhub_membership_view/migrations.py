"""Revision bodies of the view's tables, shared by the histories of the services that keep it."""

from __future__ import annotations

from datetime import date


def add_membership_history() -> None:
    """Revision body of evaluation and feedback: their membership view keeps history.

    Members already in the view get one open stay in their current union from the start of
    time (their join dates were never kept), so what was eligible stays eligible.
    """
    from alembic import op
    from sqlalchemy import BigInteger, Column, Date, Integer, String, bindparam, text

    op.add_column("mv_cadres", Column("appointed_on", Date, nullable=True))
    op.create_table(
        "mv_member_history",
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
        Column("member_id", String(128), nullable=False),
        Column("union_id", String(128), nullable=False),
        Column("from_on", Date, nullable=False),
        Column("to_on", Date, nullable=True),
    )
    op.create_index("ix_mv_member_history_member", "mv_member_history", ["member_id", "from_on"])
    op.get_bind().execute(
        text(
            "INSERT INTO mv_member_history (member_id, union_id, from_on) "
            "SELECT member_id, union_id, :start FROM mv_members WHERE status = 'active'"
        ).bindparams(bindparam("start", date.min, type_=Date))
    )


def drop_membership_history() -> None:
    from alembic import op

    op.drop_index("ix_mv_member_history_member", table_name="mv_member_history")
    op.drop_table("mv_member_history")
    with op.batch_alter_table("mv_cadres") as batch:
        batch.drop_column("appointed_on")
