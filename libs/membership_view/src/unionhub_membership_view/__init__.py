"""A local, eventually consistent view of membership, fed by `membership.events`.

evaluation and feedback decide eligibility from it (never by calling membership): who was
an active member of which union on a given day (the history, so a command is judged at its
own business time, whatever order things arrive in), which union owns a home, who is a
cadre where and since when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Column, Date, Index, Integer, MetaData, String, Table, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.database import upsert
from unionhub_runtime.http import IdPath, ReadSession, not_found
from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.reads import ReadsTogether
from unionhub_runtime.scopes import BatchScope, Emit

Stay = tuple[str, date, date | None]  # union, from (inclusive), to (exclusive; None: still there)


def union_of_stays(stays: list[Stay], day: date) -> str | None:
    """The union of the stay that covers `day` (the latest-starting one, as `union_on` picks)."""
    covering = [(start, union) for union, start, end in stays if start <= day and (end is None or day < end)]
    return max(covering)[1] if covering else None


@dataclass(frozen=True)
class MembershipView:
    unions: Table
    members: Table
    homes: Table
    cadres: Table
    history: Table  # one row per stay of a member in a union: [from_on, to_on)

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
                await self._stay(session, d.member_id, d.union_id, d.joined_on)
            case "member.left":
                row = {"member_id": d.member_id, "union_id": d.union_id, "status": "left"}
                await upsert(session, self.members, row)
                await self._stay(session, d.member_id, None, d.left_on)
            case "member.transferred":
                row = {"member_id": d.member_id, "union_id": d.to_union_id, "status": "active"}
                await upsert(session, self.members, row)
                await self._stay(session, d.member_id, d.to_union_id, d.transferred_on)
            case "home.registered":
                await upsert(session, self.homes, {"home_id": d.home_id, "union_id": d.union_id})
            case "cadre.appointed":
                row = {"member_id": d.member_id, "union_id": d.union_id, "role": d.role, "appointed_on": d.appointed_on}
                await upsert(session, self.cadres, row)

    def scope(self, session: AsyncSession) -> BatchScope:
        """The batch scope of `membership.events`: each event folded in, nothing published.
        No savepoint: folding an event cannot be rejected, and any failure fails the batch."""
        return _ViewScope(self, session)

    async def _stay(self, session: AsyncSession, member_id: str, union_id: str | None, on: date) -> None:
        """Ends the member's open stay on `on` and, given a union, opens one there."""
        h = self.history.c
        await session.execute(update(self.history).where(h.member_id == member_id, h.to_on.is_(None)).values(to_on=on))
        if union_id is not None:
            await session.execute(insert(self.history).values(member_id=member_id, union_id=union_id, from_on=on))

    async def union_on(self, session: AsyncSession, member_id: str, day: date) -> str | None:
        """The union the member was active in on `day`, by the history received so far."""
        h = self.history.c
        return await session.scalar(
            select(h.union_id)
            .where(h.member_id == member_id, h.from_on <= day, or_(h.to_on.is_(None), h.to_on > day))
            .order_by(h.from_on.desc())
            .limit(1)
        )

    async def cadre_union_on(self, session: AsyncSession, member_id: str, day: date) -> str | None:
        """The union the member was appointed a cadre of by `day`."""
        c = self.cadres.c
        return await session.scalar(
            select(c.union_id).where(c.member_id == member_id, or_(c.appointed_on.is_(None), c.appointed_on <= day))
        )

    async def member(self, session: AsyncSession, member_id: str) -> tuple[str, str] | None:
        """(union_id, status) of a member as last heard, or None if never heard of."""
        m = self.members.c
        row = (await session.execute(select(m.union_id, m.status).where(m.member_id == member_id))).first()
        return (row.union_id, row.status) if row else None


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
            Column("appointed_on", Date, nullable=True),  # NULL: appointed before the view kept dates
        ),
        history=Table(
            "mv_member_history",
            metadata,
            Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
            Column("member_id", String(128), nullable=False),
            Column("union_id", String(128), nullable=False),
            Column("from_on", Date, nullable=False),
            Column("to_on", Date, nullable=True),  # NULL: still there
            Index("ix_mv_member_history_member", "member_id", "from_on"),
        ),
    )


class KnownMember(BaseModel):
    """A member as this service last heard of them on `membership.events`."""

    member_id: str
    union_id: str = Field(description="the union they were last active in")
    status: Literal["active", "left"]


def view_router(view: MembershipView) -> APIRouter:
    """`GET /membership-view/members/{id}`: what this service knows of a member (no personal data)."""
    router = APIRouter(tags=["membership view"])

    @router.get("/membership-view/members/{member_id}", responses=not_found("member not known here (yet)"))
    async def known_member(member_id: IdPath, session: ReadSession) -> KnownMember:
        known = await view.member(session, member_id)
        if known is None:
            raise HTTPException(status_code=404, detail="member not known here (yet)")
        return KnownMember(member_id=member_id, union_id=known[0], status=known[1])

    return router


class _ViewScope:
    def __init__(self, view: MembershipView, session: AsyncSession) -> None:
        self._view, self._session = view, session

    async def prefetch(self, events: Sequence[CloudEvent[Any]], reads: ReadsTogether | None = None) -> None:
        return None

    async def handle(self, event: CloudEvent[Any], *, final: bool = False) -> Sequence[Emit]:
        await self._view.apply(self._session, event)
        return ()

    async def flush(self, together: InsertsTogether | None = None) -> None:
        return None

    def committed(self) -> None:
        return None
