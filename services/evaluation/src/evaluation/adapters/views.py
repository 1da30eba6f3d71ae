"""Read-side queries of evaluation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.scoring import results as compute_results
from . import orm
from .repositories import rating_values


async def campaign(session: AsyncSession, campaign_id: str) -> dict[str, Any] | None:
    row = (
        (await session.execute(select(orm.campaigns).where(orm.campaigns.c.campaign_id == campaign_id)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    r = orm.ratings.c
    counts: dict[str, int] = dict(
        (
            await session.execute(
                select(r.rater_kind, func.count()).where(r.campaign_id == campaign_id).group_by(r.rater_kind)
            )
        ).all()
    )
    lanes = orm.runtime_tables.held_lanes.c  # held ratings (and a held close) occupy the campaign's lane
    held = await session.scalar(select(func.count()).where(lanes.lane == f"campaign:{campaign_id}"))
    return {**row, "ratings": {k: counts.get(k, 0) for k in ("member", "unit", "superior")}, "held": held}


async def results(session: AsyncSession, campaign_id: str) -> dict[str, Any] | None:
    found = await campaign(session, campaign_id)
    if found is None:
        return None
    if found["status"] == "closed":
        rows = (
            (await session.execute(select(orm.results).where(orm.results.c.campaign_id == campaign_id)))
            .mappings()
            .all()
        )
        homes = [{k: v for k, v in row.items() if k != "campaign_id"} for row in rows]
    else:
        homes = [
            vars(r)
            for r in compute_results(
                home_ids=found["home_ids"],
                ratings=await rating_values(session, campaign_id),
                weights=found["weights"],
                min_member_ratings=found["min_member_ratings"],
                thresholds=found["star_thresholds"],
            )
        ]
    homes.sort(key=lambda h: (h["rank"] is None, h["rank"] or 0, h["home_id"]))
    return {
        "campaign_id": campaign_id,
        "status": found["status"],
        "provisional": found["status"] != "closed",
        "weights": found["weights"],
        "homes": homes,
    }


async def audit(
    session: AsyncSession, campaign_id: str, rater_id: str | None, command_id: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    a = orm.rating_audit.c
    query = select(orm.rating_audit).where(a.campaign_id == campaign_id, a.id > after)
    if rater_id is not None:
        query = query.where(a.rater_id == rater_id)
    if command_id is not None:
        query = query.where(a.command_id == command_id)
    return [dict(r) for r in (await session.execute(query.order_by(a.id).limit(limit))).mappings()]


async def post_stars(session: AsyncSession, month: str) -> list[dict[str, Any]]:
    s = orm.post_stars.c
    rows = await session.execute(
        select(s.post_id, s.worker_id, s.average, s.item_count.label("items"))
        .where(s.month == month)
        .order_by(s.post_id)
    )
    return [dict(r) for r in rows.mappings()]


async def studio_rewards(session: AsyncSession, year: int) -> list[dict[str, Any]]:
    s = orm.studio_rewards.c
    rows = await session.execute(
        select(s.studio_id, s.union_id, s.grade, s.value_created_cny, s.reward_cny)
        .where(s.year == year)
        .order_by(s.studio_id)
    )
    return [dict(r) for r in rows.mappings()]
