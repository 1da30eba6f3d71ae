"""Read-side queries of feedback. Listings stay aggregate: no opinion text leaves in a list."""

from __future__ import annotations

from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_domain import SHANGHAI

from . import orm


async def opinion(session: AsyncSession, opinion_id: str) -> dict[str, Any] | None:
    o = orm.opinions.c
    row = (await session.execute(select(orm.opinions).where(o.opinion_id == opinion_id))).mappings().first()
    return dict(row) if row is not None else None


async def stats(session: AsyncSession, union_id: str, year: int | None) -> dict[str, Any]:
    o = orm.opinions.c
    query = select(o.status, o.responded_at, o.due_at, o.response_seconds, o.satisfaction, o.overdue).where(
        o.union_id == union_id
    )
    if year is not None:  # the year of submission, in Asia/Shanghai
        query = query.where(
            o.submitted_at >= datetime(year, 1, 1, tzinfo=SHANGHAI),
            o.submitted_at < datetime(year + 1, 1, 1, tzinfo=SHANGHAI),
        )
    rows = (await session.execute(query)).all()
    answered = [r.response_seconds for r in rows if r.response_seconds is not None]
    in_time = [r for r in rows if r.response_seconds is not None and not r.overdue]
    rated = [r.satisfaction for r in rows if r.satisfaction is not None]
    return {
        "union_id": union_id,
        "year": year,
        "received": len(rows),
        "responded": len(answered),
        "responded_in_time": len(in_time),
        "overdue": sum(1 for r in rows if r.overdue),
        "median_response_seconds": median(answered) if answered else None,
        "mean_satisfaction": round(sum(rated) / len(rated), 2) if rated else None,
    }


async def visits(session: AsyncSession, month: str) -> list[dict[str, Any]]:
    v = orm.visits.c
    rows = await session.execute(
        select(v.cadre_id, func.count().label("visits"))
        .where(v.month == month)
        .group_by(v.cadre_id)
        .order_by(v.cadre_id)
    )
    return [dict(r) for r in rows.mappings()]
