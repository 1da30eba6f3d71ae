"""HTTP read API. Every parameter is validated; listings are aggregates only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from unionhub_runtime.http import IdPath, ReadSession

from ..adapters import views

router = APIRouter(tags=["feedback"])


Session = ReadSession


@router.get("/opinions/{opinion_id}")
async def get_opinion(opinion_id: IdPath, session: Session) -> dict[str, Any]:
    if (found := await views.opinion(session, opinion_id)) is None:
        raise HTTPException(status_code=404, detail="opinion not found")
    return found


@router.get("/stats")
async def stats(
    session: Session,
    union_id: Annotated[str, Query(min_length=1, max_length=128)],
    year: Annotated[int | None, Query(ge=1900, le=2200)] = None,
) -> dict[str, Any]:
    return await views.stats(session, union_id, year)


@router.get("/visits")
async def visits(session: Session, month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]) -> dict[str, Any]:
    return {"month": month, "cadres": await views.visits(session, month)}
