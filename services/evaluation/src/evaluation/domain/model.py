"""Evaluation's aggregates and rules. Pure Python: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

from unionhub_domain import Aggregate, Rejected, RejectionCode

from . import commands, events
from .scoring import HomeResult, exact, rating_value, results, round_half_up

Status = Literal["open", "closed"]
OPEN: Final = "open"
CLOSED: Final = "closed"
STUDIO_REWARDS_CNY = {"none": 0, "qualified": 20_000, "excellent": 30_000}
STAR_LEVELS = {"1", "2", "3", "4", "5"}


@dataclass
class Campaign(Aggregate):
    campaign_id: str
    year: int
    title: str
    weights: dict[str, float]
    home_ids: tuple[str, ...]
    min_member_ratings: int
    star_thresholds: dict[str, float]
    status: Status = OPEN

    @classmethod
    def open(cls, cmd: commands.OpenCampaign) -> Campaign:
        weights = cmd.weights
        if set(weights) != {"member", "unit", "superior"} or any(w < 0 for w in weights.values()):
            raise Rejected(RejectionCode.INVALID_WEIGHTS, "weights member, unit and superior must each be ≥ 0")
        if abs(sum((exact(w) for w in weights.values()), Fraction(0)) - 1) > Fraction(1, 10**9):
            raise Rejected(RejectionCode.INVALID_WEIGHTS, f"weights sum to {sum(weights.values())}, not 1")
        if not set(cmd.star_thresholds) <= STAR_LEVELS:
            raise Rejected(RejectionCode.INVALID_THRESHOLDS, "star levels are 1 to 5")
        if len(set(cmd.home_ids)) != len(cmd.home_ids):
            raise Rejected(RejectionCode.INVALID_HOMES, "home_ids repeat")
        campaign = cls(**vars(cmd))
        campaign.events.append(events.CampaignOpened(**vars(cmd)))
        return campaign

    def check_rating(self, cmd: commands.SubmitRating) -> None:
        if self.status != OPEN:
            raise Rejected(RejectionCode.CLOSED, f"campaign {self.campaign_id} is closed")
        if cmd.home_id not in self.home_ids:
            raise Rejected(RejectionCode.NOT_IN_CAMPAIGN, f"home {cmd.home_id} is not in campaign {self.campaign_id}")

    def accept(self, cmd: commands.SubmitRating) -> Fraction:
        value = rating_value(cmd.scores)
        self.events.append(
            events.RatingAccepted(
                cmd.command_id, cmd.campaign_id, cmd.home_id, cmd.rater_kind, cmd.rater_id, round_half_up(value)
            )
        )
        return value

    def close(self, ratings: dict[str, dict[str, list[Fraction]]]) -> list[HomeResult]:
        if self.status != OPEN:
            raise Rejected(RejectionCode.CLOSED, f"campaign {self.campaign_id} is already closed")
        self.status = CLOSED
        outcome = results(
            home_ids=self.home_ids,
            ratings=ratings,
            weights=self.weights,
            min_member_ratings=self.min_member_ratings,
            thresholds=self.star_thresholds,
        )
        self.events.append(events.CampaignClosed(self.campaign_id, len(outcome)))
        self.events.extend(events.HomeStarAwarded(self.campaign_id, **vars(r)) for r in outcome)
        return outcome


def may_rate(rater_union: str | None, home_union: str | None) -> bool:
    """A member may rate a home of the union they were active in when they rated."""
    return rater_union is not None and rater_union == home_union


def studio_reward(cmd: commands.AssessStudio) -> events.StudioRewarded:
    return events.StudioRewarded(cmd.studio_id, cmd.year, cmd.grade, STUDIO_REWARDS_CNY[cmd.grade])
