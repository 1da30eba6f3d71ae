"""evaluation: commands on `evaluation.commands` and `evaluation.work-scores`, events on
`evaluation.events`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from .common import ContractModel, Id, Month, Name, Score, Year

DEFAULT_STAR_THRESHOLDS: dict[str, float] = {"5": 90, "4": 80, "3": 70, "2": 60, "1": 50}
StarLevel = Annotated[str, Field(pattern=r"^[1-5]$")]


class RaterKind(StrEnum):
    MEMBER = "member"
    UNIT = "unit"
    SUPERIOR = "superior"


class StudioGrade(StrEnum):
    NONE = "none"
    QUALIFIED = "qualified"
    EXCELLENT = "excellent"


class Weights(ContractModel):
    """Campaign weights; that they are ≥ 0 and sum to 1 is a business rule (rejection)."""

    member: float
    unit: float
    superior: float


class OpenCampaign(ContractModel):
    """`campaign.open`; `campaign.opened` carries the same data with defaults filled in."""

    campaign_id: Id
    year: Year
    title: Name
    weights: Weights
    home_ids: Annotated[list[Id], Field(min_length=1, max_length=100_000)]
    min_member_ratings: Annotated[int, Field(ge=0)] = 1
    star_thresholds: dict[StarLevel, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: dict(DEFAULT_STAR_THRESHOLDS)
    )


class Scores(ContractModel):
    organisation: Score
    facilities: Score
    work: Score
    labour_relations: Score
    finances: Score


class SubmitRating(ContractModel):
    campaign_id: Id
    home_id: Id
    rater_kind: RaterKind
    rater_id: Id
    scores: Scores
    submitted_at: AwareDatetime


class RatingAccepted(ContractModel):
    campaign_id: Id
    home_id: Id
    rater_kind: RaterKind
    rater_id: Id
    value: float


class CloseCampaign(ContractModel):
    campaign_id: Id


class CampaignClosed(ContractModel):
    campaign_id: Id
    homes: int


class HomeStarAwarded(ContractModel):
    campaign_id: Id
    home_id: Id
    composite: float | None
    member_avg: float | None
    unit_avg: float | None
    superior_avg: float | None
    member_ratings: int
    stars: Annotated[int, Field(ge=0, le=5)]
    rank: int | None
    reason: str | None


class WorkScored(ContractModel):
    """One automatically scored work item (a rolled slab, …) on `evaluation.work-scores`."""

    item_id: Id
    worker_id: Id
    post_id: Id
    score: Annotated[float, Field(ge=0, le=100)]
    scored_at: AwareDatetime


class ClosePostStarMonth(ContractModel):
    month: Month
    post_id: Id | None = None


class PostStarAwarded(ContractModel):
    month: Month
    post_id: Id
    worker_id: Id
    average: float
    items: int


class PostStarMonthClosed(ContractModel):
    """Added in v1 (optional to consume): every close-month answers, even with no winner."""

    month: Month
    post_id: Id | None
    posts_awarded: int


class AssessStudio(ContractModel):
    studio_id: Id
    union_id: Id
    year: Year
    grade: StudioGrade
    value_created_cny: Annotated[float, Field(ge=0)]


class StudioRewarded(ContractModel):
    studio_id: Id
    year: Year
    grade: StudioGrade
    reward_cny: int
