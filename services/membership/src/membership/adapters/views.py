"""Read-side queries (CQRS views): plain SQL over the tables, no aggregates."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import orm


async def union(session: AsyncSession, union_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(orm.unions).where(orm.unions.c.union_id == union_id))).mappings().first()
    if row is None:
        return None
    active = await session.scalar(
        select(func.count()).where(orm.members.c.union_id == union_id, orm.members.c.status == "active")
    )
    return {**row, "active_members": active}


async def member(session: AsyncSession, member_id: str) -> dict[str, Any] | None:
    """A member's status and dates; never personal data."""
    m = orm.members.c
    row = (
        (
            await session.execute(
                select(m.member_id, m.union_id, m.status, m.joined_on, m.left_on).where(m.member_id == member_id)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    h = orm.member_history.c
    history = (
        (await session.execute(select(h.union_id, h.kind, h.on).where(h.member_id == member_id).order_by(h.id)))
        .mappings()
        .all()
    )
    return {**row, "history": [dict(entry) for entry in history]}


async def union_members(
    session: AsyncSession, union_id: str, status: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """One page of a union's members, ordered by id (keyset paging with `after`)."""
    m = orm.members.c
    query = select(m.member_id, m.status, m.joined_on, m.left_on).where(m.union_id == union_id)
    if status is not None:
        query = query.where(m.status == status)
    if after is not None:
        query = query.where(m.member_id > after)
    rows = (await session.execute(query.order_by(m.member_id).limit(limit))).mappings().all()
    return [dict(r) for r in rows]


STARTS = ("enrolled", "reinstated", "transferred_in")  # history kinds that begin a membership


async def members_active_on(
    session: AsyncSession, union_id: str, on: date, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Who was an active member of `union_id` on `on`, from the append-only history."""
    h = orm.member_history.c
    ranked = (
        select(
            h.member_id,
            h.union_id,
            h.kind,
            func.row_number().over(partition_by=h.member_id, order_by=(h.on.desc(), h.id.desc())).label("rn"),
        )
        .where(h.on <= on, h.member_id.in_(select(h.member_id).where(h.union_id == union_id)))
        .subquery()
    )
    query = select(ranked.c.member_id).where(ranked.c.rn == 1, ranked.c.union_id == union_id, ranked.c.kind.in_(STARTS))
    if after is not None:
        query = query.where(ranked.c.member_id > after)
    rows = await session.execute(query.order_by(ranked.c.member_id).limit(limit))
    return [{"member_id": member_id, "status": "active", "on": on} for (member_id,) in rows]


def _in_year(column: Any, year: int) -> Any:
    return column.between(date(year, 1, 1), date(year, 12, 31))


def _in_district(query: Select[Any], district: str | None, union_column: Any) -> Select[Any]:
    if district is None:
        return query
    return query.join(orm.unions, orm.unions.c.union_id == union_column).where(orm.unions.c.district == district)


async def growth(session: AsyncSession, year: int, district: str | None) -> dict[str, Any]:
    """The contract's yearly growth figures, for a district or the whole city."""
    u, m, h = orm.unions.c, orm.members.c, orm.member_history.c
    founded = select(u.union_id).where(u.level == "grassroots", _in_year(u.founded_on, year))
    if district is not None:
        founded = founded.where(u.district == district)
    independent = select(func.count()).select_from(founded.where(u.kind == "independent").subquery())
    active = (
        select(m.union_id)
        .where(m.status == "active", m.union_id.in_(founded))
        .group_by(m.union_id)
        .having(func.count() >= 100)
    )
    big = select(func.count()).select_from(active.subquery())
    enrolments = _in_district(
        select(func.count())
        .select_from(orm.member_history)
        .where(h.kind.in_(("enrolled", "reinstated")), _in_year(h.on, year)),
        district,
        h.union_id,
    )
    homes = _in_district(
        select(func.count()).select_from(orm.homes).where(_in_year(orm.homes.c.opened_on, year)),
        district,
        orm.homes.c.union_id,
    )
    stations = _in_district(
        select(func.count()).select_from(orm.stations).where(_in_year(orm.stations.c.opened_on, year)),
        district,
        orm.stations.c.union_id,
    )
    return {
        "year": year,
        "district": district,
        "new_independent_unions": await session.scalar(independent),
        "new_unions_100_plus": await session.scalar(big),
        "new_members": await session.scalar(enrolments),
        "new_homes": await session.scalar(homes),
        "new_stations": await session.scalar(stations),
    }
