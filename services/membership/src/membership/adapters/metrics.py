"""Membership's business gauges, labelled by district (free text, so bounded by
`set_bounded`: the largest districts, the rest as "(other)"; never an id)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.metrics import set_bounded

from . import orm

CITY = "(city)"  # the label of unions without a district: the federation itself


class MembershipGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.active_members = Gauge(
            "membership_active_members", "Active members by district.", ["district"], registry=registry
        )
        self.unions = Gauge(
            "membership_unions", "Registered unions by district and level.", ["district", "level"], registry=registry
        )
        self.homes = Gauge("membership_homes", "Workers' homes by district.", ["district"], registry=registry)
        self.stations = Gauge("membership_stations", "Warm stations by district.", ["district"], registry=registry)

    async def refresh(self, session: AsyncSession) -> None:
        u = orm.unions.c
        rows = await session.execute(select(u.district, u.level, func.count()).group_by(u.district, u.level))
        set_bounded(self.unions, (((district or CITY, level), count) for district, level, count in rows))
        for gauge, table in (
            (self.active_members, orm.members),
            (self.homes, orm.homes),
            (self.stations, orm.stations),
        ):
            query = (
                select(u.district, func.count())
                .select_from(table.join(orm.unions, orm.unions.c.union_id == table.c.union_id))
                .group_by(u.district)
            )
            if table is orm.members:
                query = query.where(orm.members.c.status == "active")
            set_bounded(gauge, (((district or CITY,), count) for district, count in await session.execute(query)))
