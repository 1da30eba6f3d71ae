"""A local, eventually consistent view of membership, fed by `membership.events`.

evaluation and feedback decide eligibility from it (never by calling membership): who is an
active member of which union, which union owns a home, who is a cadre where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent

from .database import upsert
from .http import IdPath, ReadSession


@dataclass(frozen=True)
class MembershipView:
    unions: Table
    members: Table
    homes: Table
    cadres: Table

    async def apply(self, session: AsyncSession, event: CloudEvent[Any]) -> None:
        """Folds one membership event into the view; the inbox applies each event id once."""
        d = event.data
        match event.type:
            case "union.registered":
                row = {"union_id": d.union_id, "level": d.level, "district": d.district}
                await upsert(session, self.unions, row)
            case "member.enrolled":
                row = {"member_id": d.member_id, "union_id": d.union_id, "status": "active"}
                await upsert(session, self.members, row)
            case "member.left":
                row = {"member_id": d.member_id, "union_id": d.union_id, "status": "left"}
                await upsert(session, self.members, row)
            case "member.transferred":
                row = {"member_id": d.member_id, "union_id": d.to_union_id, "status": "active"}
                await upsert(session, self.members, row)
            case "home.registered":
                await upsert(session, self.homes, {"home_id": d.home_id, "union_id": d.union_id})
            case "cadre.appointed":
                row = {"member_id": d.member_id, "union_id": d.union_id, "role": d.role}
                await upsert(session, self.cadres, row)

    async def member(self, session: AsyncSession, member_id: str) -> tuple[str, str] | None:
        """(union_id, status) of a member as last heard, or None if never heard of."""
        m = self.members.c
        row = (await session.execute(select(m.union_id, m.status).where(m.member_id == member_id))).first()
        return (row.union_id, row.status) if row else None


def prerequisites(event_type: str, data: Any) -> list[str]:
    """The prerequisite keys a membership event makes known, as commands wait for them
    (`holding.Missing.waiting_for`): "union:<id>", "member:<id>", "home:<id>", "cadre:<id>"."""
    match event_type:
        case "union.registered":
            return [f"union:{data.union_id}"]
        case "member.enrolled" | "member.left" | "member.transferred":
            return [f"member:{data.member_id}"]
        case "home.registered":
            return [f"home:{data.home_id}"]
        case "cadre.appointed":
            return [f"cadre:{data.member_id}", f"member:{data.member_id}"]
    return []


def add_membership_view(metadata: MetaData) -> MembershipView:
    """Declares the view's tables on a service's metadata."""
    return MembershipView(
        unions=Table(
            "mv_unions",
            metadata,
            Column("union_id", String(128), primary_key=True),
            Column("level", String(16), nullable=False),
            Column("district", String(200), nullable=True),
        ),
        members=Table(
            "mv_members",
            metadata,
            Column("member_id", String(128), primary_key=True),
            Column("union_id", String(128), nullable=False, index=True),
            Column("status", String(8), nullable=False),
        ),
        homes=Table(
            "mv_homes",
            metadata,
            Column("home_id", String(128), primary_key=True),
            Column("union_id", String(128), nullable=False),
        ),
        cadres=Table(
            "mv_cadres",
            metadata,
            Column("member_id", String(128), primary_key=True),
            Column("union_id", String(128), nullable=False, index=True),
            Column("role", String(32), nullable=False),
        ),
    )


def view_router(view: MembershipView) -> APIRouter:
    """`GET /membership-view/members/{id}`: what this service knows of a member (no personal data)."""
    router = APIRouter(tags=["membership view"])

    @router.get("/membership-view/members/{member_id}")
    async def known_member(member_id: IdPath, session: ReadSession) -> dict[str, str]:
        known = await view.member(session, member_id)
        if known is None:
            raise HTTPException(status_code=404, detail="member not known here (yet)")
        return {"member_id": member_id, "union_id": known[0], "status": known[1]}

    return router
