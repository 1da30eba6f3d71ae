"""HTTP read API. Every parameter is validated; listings are aggregates only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from unionhub_runtime.auth import requiring
from unionhub_runtime.http import IdPath, ReadSession

from ..adapters import views
from . import responses
from .responses import NOT_FOUND

router = APIRouter(tags=["feedback"])


Session = ReadSession


# The member's words and the cadre's answer are personal: shown only with this scope.
# Without it, only these fields (a column added later stays hidden until listed here).
READ_TEXT = "feedback:read-text"
STATUS_FIELDS = (
    "opinion_id",
    "member_id",
    "channel",
    "submitted_at",
    "campaign_id",
    "home_id",
    "category",
    "union_id",
    "due_at",
    "status",
    "responder_id",
    "responded_at",
    "response_seconds",
    "satisfaction",
    "overdue",
)


# Unset fields are left out, not sent as null: the text fields are absent without the scope.
@router.get(
    "/opinions/{opinion_id}", response_model=responses.Opinion, response_model_exclude_unset=True, responses=NOT_FOUND
)
async def get_opinion(
    opinion_id: IdPath, session: Session, scopes: Annotated[set[str], Depends(requiring("feedback:read"))]
) -> dict[str, Any]:
    if (found := await views.opinion(session, opinion_id)) is None:
        raise HTTPException(status_code=404, detail="opinion not found")
    if READ_TEXT not in scopes:
        return {k: v for k, v in found.items() if k in STATUS_FIELDS}
    return found


@router.get("/stats", response_model=responses.Stats)
async def stats(
    session: Session,
    union_id: Annotated[str, Query(min_length=1, max_length=128)],
    year: Annotated[int | None, Query(ge=1900, le=2200)] = None,
) -> dict[str, Any]:
    return await views.stats(session, union_id, year)


@router.get("/visits", response_model=responses.Visits)
async def visits(session: Session, month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]) -> dict[str, Any]:
    return {"month": month, "cadres": await views.visits(session, month)}
