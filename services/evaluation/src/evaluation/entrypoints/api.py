"""HTTP read API. Every parameter is validated; page sizes are bounded."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from unionhub_runtime.http import IdPath, ReadSession

from ..adapters import views
from . import responses
from .responses import NOT_FOUND

router = APIRouter(tags=["evaluation"])
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


Session = ReadSession


@router.get("/campaigns/{campaign_id}", response_model=responses.Campaign, responses=NOT_FOUND)
async def get_campaign(campaign_id: IdPath, session: Session) -> dict[str, Any]:
    if (campaign := await views.campaign(session, campaign_id)) is None:
        raise HTTPException(status_code=404, detail="campaign not found")
    return campaign


@router.get("/campaigns/{campaign_id}/results", response_model=responses.Results, responses=NOT_FOUND)
async def campaign_results(campaign_id: IdPath, session: Session) -> dict[str, Any]:
    """Per home: components, member ratings, composite, stars, rank (provisional while open)."""
    if (found := await views.results(session, campaign_id)) is None:
        raise HTTPException(status_code=404, detail="campaign not found")
    return found


@router.get("/campaigns/{campaign_id}/audit", response_model=responses.Audit)
async def campaign_audit(
    campaign_id: IdPath,
    session: Session,
    rater_id: Annotated[str | None, Query(max_length=128)] = None,
    command_id: Annotated[str | None, Query(max_length=256)] = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # an audit row id (BIGINT)
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Every rating decision: who, when, which command, the outcome and why."""
    items = await views.audit(session, campaign_id, rater_id, command_id, after, limit)
    return {"campaign_id": campaign_id, "items": items, "next_after": items[-1]["id"] if len(items) == limit else None}


@router.get("/post-stars", response_model=responses.PostStars)
async def post_stars(session: Session, month: Annotated[str, Query(pattern=MONTH)]) -> dict[str, Any]:
    return {"month": month, "stars": await views.post_stars(session, month)}


@router.get("/studio-rewards", response_model=responses.StudioRewards)
async def studio_rewards(session: Session, year: Annotated[int, Query(ge=1900, le=2200)]) -> dict[str, Any]:
    rewards = await views.studio_rewards(session, year)
    return {"year": year, "rewards": rewards, "total_cny": sum(r["reward_cny"] for r in rewards)}
