"""What the read API answers: every field of every route, so `/openapi.json` documents it.

The models describe what `adapters/views.py` returns, field for field: FastAPI drops from
an answer every field its response model does not declare."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from unionhub_contracts.evaluation import RaterKind, StudioGrade
from unionhub_runtime.http import not_found

from ..domain.model import Status

# A number kept as the campaign's command gave it (JSON column): an integer threshold
# such as the default 90 stays 90 on the wire, where `float` would answer 90.0.
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]


NOT_FOUND = not_found("no such campaign")


class Weights(BaseModel):
    member: Number
    unit: Number
    superior: Number


class RatingCounts(BaseModel):
    """Ratings stored, the latest per rater and home."""

    member: int
    unit: int
    superior: int


class Campaign(BaseModel):
    campaign_id: str
    year: int
    title: str
    weights: Weights
    home_ids: list[str]
    min_member_ratings: int = Field(description="a home with fewer member ratings gets no composite")
    star_thresholds: dict[str, Number] = Field(
        description="the lowest composite for each star level, keyed by level ('1' to '5')"
    )
    status: Status
    ratings: RatingCounts
    held: int = Field(description="commands held for this campaign, waiting for what they depend on")


class HomeResult(BaseModel):
    home_id: str
    composite: float | None = Field(description="null when the home lacks ratings (see reason)")
    member_avg: float | None
    unit_avg: float | None
    superior_avg: float | None
    member_ratings: int
    stars: int = Field(ge=0, le=5)
    rank: int | None = Field(description="by composite, equal composites sharing a rank; null without one")
    reason: str | None = Field(description="why the home has no composite")


class Results(BaseModel):
    campaign_id: str
    status: Status
    provisional: bool = Field(description="true while the campaign is open: computed from the ratings so far")
    weights: Weights
    homes: list[HomeResult] = Field(description="by rank, homes without a rank last, then by home_id")


class AuditEntry(BaseModel):
    """One rating decision."""

    id: int = Field(description="the entry's position; pass as `after` to read on")
    command_id: str
    campaign_id: str
    home_id: str
    rater_kind: RaterKind
    rater_id: str
    outcome: Literal["accepted", "rejected"]
    code: str | None = Field(description="the `command.rejected` code; null when accepted")
    reason: str | None = Field(description="why it was rejected; null when accepted")
    at: datetime = Field(description="when it was decided (RFC 3339, UTC)")


class Audit(BaseModel):
    campaign_id: str
    items: list[AuditEntry] = Field(description="in the order decided")
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")


class PostStar(BaseModel):
    post_id: str
    worker_id: str = Field(description="the post's star of the month")
    average: float = Field(description="the worker's average score in the month")
    items: int = Field(description="work items the worker scored in the month")


class PostStars(BaseModel):
    month: str = Field(description="YYYY-MM, in Asia/Shanghai")
    stars: list[PostStar] = Field(description="one per post with a winner, by post_id")


class StudioReward(BaseModel):
    studio_id: str
    union_id: str
    grade: StudioGrade
    value_created_cny: float
    reward_cny: int


class StudioRewards(BaseModel):
    year: int
    rewards: list[StudioReward] = Field(description="by studio_id")
    total_cny: int = Field(description="the sum of the rewards")
