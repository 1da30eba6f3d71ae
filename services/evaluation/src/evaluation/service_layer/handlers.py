"""One handler per command: load, let the domain decide, store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from unionhub_domain import Missing, Rejected, RejectionCode, day_of, same_again

from ..domain import commands, events, model
from ..domain.post_star import winners
from .ports import UnitOfWork


@dataclass(frozen=True)
class Dependencies:
    now: Callable[[], datetime]


async def open_campaign(cmd: commands.OpenCampaign, uow: UnitOfWork, deps: Dependencies) -> None:
    """Opens a star campaign; the same data again changes nothing and answers again."""
    if existing := await uow.campaigns.get(cmd.campaign_id):
        same_again(existing, vars(cmd), f"campaign {cmd.campaign_id}")
        existing.events.append(events.CampaignOpened(**vars(cmd)))
        return
    await uow.campaigns.add(model.Campaign.open(cmd))


async def _campaign(uow: UnitOfWork, campaign_id: str) -> model.Campaign:
    campaign = await uow.campaigns.get(campaign_id)
    if campaign is None:
        raise Rejected(RejectionCode.NOT_FOUND, f"campaign {campaign_id} is not open")
    return campaign


async def _check_rater(uow: UnitOfWork, rating: commands.SubmitRating) -> None:
    """A member rater must be active in the home's union at `submitted_at`. What membership
    has told so far may not show it yet (its events may be on their way): hold, don't reject."""
    if rating.rater_kind != "member":
        return  # employer units and superior unions rate as organisations
    home_union = await uow.membership.home_union(rating.home_id)
    if home_union is None:
        raise Missing(
            f"home:{rating.home_id}", RejectionCode.NOT_A_MEMBER, f"home {rating.home_id} is not known to membership"
        )
    if not model.may_rate(await uow.membership.union_on(rating.rater_id, day_of(rating.submitted_at)), home_union):
        raise Missing(
            f"member:{rating.rater_id}",
            RejectionCode.NOT_A_MEMBER,
            f"{rating.rater_id} was not an active member of the home's union when rating",
        )


async def submit_rating(cmd: commands.SubmitRating, uow: UnitOfWork, deps: Dependencies) -> None:
    """Accepts a rating whose rater may rate the home."""
    campaign = await _campaign(uow, cmd.campaign_id)
    campaign.check_rating(cmd)
    await _check_rater(uow, cmd)
    await uow.ratings.put(cmd, campaign.accept(cmd))
    await uow.ratings.audit(cmd, "accepted", None, None, deps.now())


async def record_rejected_rating(
    cmd: commands.SubmitRating, rejection: Rejected, uow: UnitOfWork, deps: Dependencies
) -> None:
    """A rating rejected by a rule is audited too (after its changes are discarded), and one
    whose hold ended unapplied; a rating still held is not (it has no outcome yet)."""
    await uow.ratings.audit(cmd, "rejected", rejection.code, rejection.reason, deps.now())


async def close_campaign(cmd: commands.CloseCampaign, uow: UnitOfWork, deps: Dependencies) -> None:
    """Closes a campaign and awards every home its stars; closing twice is rejected."""
    campaign = await _campaign(uow, cmd.campaign_id)
    results = campaign.close(await uow.ratings.values(cmd.campaign_id))
    await uow.campaigns.save(campaign)
    await uow.results.save(cmd.campaign_id, results)


async def close_post_star_month(cmd: commands.ClosePostStarMonth, uow: UnitOfWork, deps: Dependencies) -> None:
    """Awards the month's post stars that are not awarded yet."""
    awarded = await uow.post_stars.awarded_posts(cmd.month)
    if cmd.post_id is not None and cmd.post_id in awarded:
        raise Rejected(RejectionCode.CLOSED, f"post {cmd.post_id} already has its star for {cmd.month}")
    stars = [s for s in winners(await uow.post_stars.worker_months(cmd.month, cmd.post_id)) if s.post_id not in awarded]
    for star in stars:
        await uow.post_stars.award(cmd.month, star)
        uow.events.append(events.PostStarAwarded(cmd.month, star.post_id, star.worker_id, star.average, star.items))
    uow.events.append(events.PostStarMonthClosed(cmd.month, cmd.post_id, len(stars)))


async def assess_studio(cmd: commands.AssessStudio, uow: UnitOfWork, deps: Dependencies) -> None:
    """Grades an innovation studio for a year; a new assessment replaces the old one."""
    rewarded = model.studio_reward(cmd)
    await uow.studios.put(cmd, rewarded.reward_cny)
    uow.events.append(rewarded)
