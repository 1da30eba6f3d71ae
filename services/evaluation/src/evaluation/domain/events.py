"""What happened in evaluation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class CampaignOpened(Event):
    campaign_id: str
    year: int
    title: str
    weights: dict[str, float]
    home_ids: tuple[str, ...]
    min_member_ratings: int
    star_thresholds: dict[str, float]


@dataclass(frozen=True)
class RatingAccepted(Event):
    command_id: str
    campaign_id: str
    home_id: str
    rater_kind: str
    rater_id: str
    value: float


@dataclass(frozen=True)
class CampaignClosed(Event):
    campaign_id: str
    homes: int


@dataclass(frozen=True)
class HomeStarAwarded(Event):
    campaign_id: str
    home_id: str
    composite: float | None
    member_avg: float | None
    unit_avg: float | None
    superior_avg: float | None
    member_ratings: int
    stars: int
    rank: int | None
    reason: str | None


@dataclass(frozen=True)
class PostStarAwarded(Event):
    month: str
    post_id: str
    worker_id: str
    average: float
    items: int


@dataclass(frozen=True)
class PostStarMonthClosed(Event):
    month: str
    post_id: str | None
    posts_awarded: int


@dataclass(frozen=True)
class StudioRewarded(Event):
    studio_id: str
    year: int
    grade: str
    reward_cny: int
