"""What evaluation is asked to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class Command:
    pass


@dataclass(frozen=True)
class OpenCampaign(Command):
    campaign_id: str
    year: int
    title: str
    weights: dict[str, float]
    home_ids: tuple[str, ...]
    min_member_ratings: int
    star_thresholds: dict[str, float]


@dataclass(frozen=True)
class SubmitRating(Command):
    command_id: str  # the message id: a deferred answer refers to it
    campaign_id: str
    home_id: str
    rater_kind: str
    rater_id: str
    scores: dict[str, int]
    submitted_at: datetime


@dataclass(frozen=True)
class CloseCampaign(Command):
    campaign_id: str


@dataclass(frozen=True)
class ClosePostStarMonth(Command):
    month: str
    post_id: str | None = None


@dataclass(frozen=True)
class AssessStudio(Command):
    studio_id: str
    union_id: str
    year: int
    grade: str
    value_created_cny: float = field(default=0.0)
