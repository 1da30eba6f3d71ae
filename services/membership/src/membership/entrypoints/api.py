"""HTTP read API. Every parameter is validated; page sizes are bounded."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from unionhub_runtime.http import IdPath, ReadSession

from ..adapters import views
from . import responses
from .responses import NOT_FOUND, REFUSED

router = APIRouter(tags=["membership"])


Session = ReadSession


def _found(value: dict[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        raise HTTPException(status_code=404, detail=f"{what} not found")
    return value


@router.get("/unions/{union_id}", response_model=responses.Union, responses=NOT_FOUND)
async def get_union(union_id: IdPath, session: Session) -> dict[str, Any]:
    return _found(await views.union(session, union_id), "union")


@router.get("/unions/{union_id}/members", response_model=responses.UnionMembers, responses=NOT_FOUND | REFUSED)
async def list_union_members(
    union_id: IdPath,
    session: Session,
    status: Literal["active", "left"] | None = None,
    on: Annotated[date | None, Query(description="active members on this date, from the history")] = None,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    _found(await views.union(session, union_id), "union")
    if on is not None:
        if status not in (None, "active"):
            raise HTTPException(status_code=422, detail="`on` lists active members only")
        items = await views.members_active_on(session, union_id, on, after, limit)
    else:
        items = await views.union_members(session, union_id, status, after, limit)
    next_after = items[-1]["member_id"] if len(items) == limit else None
    return {"union_id": union_id, "items": items, "next_after": next_after}


@router.get("/members/{member_id}", response_model=responses.Member, responses=NOT_FOUND)
async def get_member(member_id: IdPath, session: Session) -> dict[str, Any]:
    return _found(await views.member(session, member_id), "member")


@router.get("/stats/growth", response_model=responses.Growth)
async def growth(
    session: Session,
    year: Annotated[int, Query(ge=1900, le=2200)],
    district: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    return await views.growth(session, year, district)
