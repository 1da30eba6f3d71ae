"""One handler per command: load, let the domain decide, store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from unionhub_runtime.errors import Rejected

from ..domain import commands, events, model
from ..domain.post_star import winners
from .unit_of_work import AbstractUnitOfWork


@dataclass(frozen=True)
class Dependencies:
    now: Callable[[], datetime]
    grace: timedelta  # how long a member rating waits for membership


async def open_campaign(cmd: commands.OpenCampaign, uow: AbstractUnitOfWork, deps: Dependencies) -> None:
    """Opens a star campaign; the same data again changes nothing and answers again."""
    if existing := await uow.campaigns.get(cmd.campaign_id):
        if not existing.same_as(cmd):
            raise Rejected("conflict", f"campaign {cmd.campaign_id} exists with different data")
        existing.events.append(events.CampaignOpened(**vars(cmd)))
        return
    await uow.campaigns.add(model.Campaign.open(cmd))


async def _campaign(uow: AbstractUnitOfWork, campaign_id: str) -> model.Campaign:
    campaign = await uow.campaigns.get(campaign_id)
    if campaign is None:
        raise Rejected("not_found", f"campaign {campaign_id} is not open")
    return campaign


async def _eligibility(uow: AbstractUnitOfWork, rating: commands.SubmitRating) -> str:
    if rating.rater_kind != "member":
        return model.ELIGIBLE  # employer units and superior unions rate as organisations
    member = await uow.membership.member(rating.rater_id)
    return model.member_eligibility(member, await uow.membership.home_union(rating.home_id))


async def _accept(campaign: model.Campaign, rating: commands.SubmitRating, uow: AbstractUnitOfWork,
                  deps: Dependencies) -> None:
    await uow.ratings.put(rating, campaign.accept(rating))
    await uow.ratings.audit(rating, "accepted", None, None, deps.now())


async def submit_rating(cmd: commands.SubmitRating, uow: AbstractUnitOfWork, deps: Dependencies) -> None:
    """Accepts a rating, or parks a member's rating until membership confirms the rater."""
    campaign = await _campaign(uow, cmd.campaign_id)
    campaign.check_rating(cmd)
    decision = await _eligibility(uow, cmd)
    if decision == model.NOT_A_MEMBER:
        raise Rejected("not_a_member", f"{cmd.rater_id} is not an active member of the home's union")
    if decision == model.WAIT:
        await uow.pending.add(model.PendingRating.wait(cmd, deps.now(), deps.grace))
        await uow.ratings.audit(cmd, "pending", None, "waiting for membership", deps.now())
        return
    await _accept(campaign, cmd, uow, deps)


async def _settle(pending: model.PendingRating, code: str, reason: str, uow: AbstractUnitOfWork,
                  deps: Dependencies) -> None:
    rating = pending.rating
    await uow.pending.remove(rating.command_id)
    await uow.ratings.audit(rating, "rejected", code, reason, deps.now())
    uow.events.append(events.RatingRejected(rating.command_id, rating.rater_kind, code, reason))


async def recheck_pending_ratings(cmd: commands.RecheckPendingRatings, uow: AbstractUnitOfWork,
                                  deps: Dependencies) -> None:
    """Decides the waiting ratings that what membership just told concerns."""
    for pending in await uow.pending.find(member_ids=cmd.member_ids, home_ids=cmd.home_ids):
        rating = pending.rating
        campaign = await _campaign(uow, rating.campaign_id)
        decision = await _eligibility(uow, rating)
        if decision == model.ELIGIBLE:
            await uow.pending.remove(rating.command_id)
            await _accept(campaign, rating, uow, deps)
        elif decision == model.NOT_A_MEMBER:
            await _settle(pending, "not_a_member", f"{rating.rater_id} is not an active member of the home's union",
                          uow, deps)


async def expire_pending_ratings(cmd: commands.ExpirePendingRatings, uow: AbstractUnitOfWork,
                                 deps: Dependencies) -> None:
    """Rejects the ratings whose grace period ran out before membership confirmed the rater."""
    for pending in await uow.pending.find(due_before=cmd.now):
        await _settle(pending, "not_a_member", "membership did not confirm the rater within the grace period",
                      uow, deps)


async def close_campaign(cmd: commands.CloseCampaign, uow: AbstractUnitOfWork, deps: Dependencies) -> None:
    """Closes a campaign and awards every home its stars; closing twice is rejected."""
    campaign = await _campaign(uow, cmd.campaign_id)
    results = campaign.close(await uow.ratings.values(cmd.campaign_id))
    await uow.campaigns.save(campaign)
    await uow.results.save(cmd.campaign_id, results)
    for pending in await uow.pending.find(campaign_id=cmd.campaign_id):
        await _settle(pending, "closed", f"campaign {cmd.campaign_id} closed before the rater was confirmed",
                      uow, deps)


async def close_post_star_month(cmd: commands.ClosePostStarMonth, uow: AbstractUnitOfWork,
                                deps: Dependencies) -> None:
    """Awards the month's post stars that are not awarded yet."""
    awarded = await uow.post_stars.awarded_posts(cmd.month)
    if cmd.post_id is not None and cmd.post_id in awarded:
        raise Rejected("closed", f"post {cmd.post_id} already has its star for {cmd.month}")
    stars = [s for s in winners(await uow.post_stars.worker_months(cmd.month, cmd.post_id)) if s.post_id not in awarded]
    for star in stars:
        await uow.post_stars.award(cmd.month, star)
        uow.events.append(events.PostStarAwarded(cmd.month, star.post_id, star.worker_id, star.average, star.items))
    uow.events.append(events.PostStarMonthClosed(cmd.month, cmd.post_id, len(stars)))


async def assess_studio(cmd: commands.AssessStudio, uow: AbstractUnitOfWork, deps: Dependencies) -> None:
    """Grades an innovation studio for a year; a new assessment replaces the old one."""
    rewarded = model.studio_reward(cmd)
    await uow.studios.put(cmd, rewarded.reward_cny)
    uow.events.append(rewarded)
