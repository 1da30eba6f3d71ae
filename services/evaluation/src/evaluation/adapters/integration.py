"""Translation at the edge: contract commands in, integration events out."""

from __future__ import annotations

from typing import Any

from unionhub_contracts import CloudEvent
from unionhub_contracts import evaluation as contract
from unionhub_runtime.scopes import Emit, EventTable, emit_from_table

from ..domain import commands, events


def to_command(event: CloudEvent[Any]) -> commands.Command:
    data = event.data.model_dump()
    match event.type:
        case "campaign.open":
            return commands.OpenCampaign(**{**data, "home_ids": tuple(data["home_ids"])})
        case "rating.submit":
            return commands.SubmitRating(command_id=event.id, **data)
        case "campaign.close":
            return commands.CloseCampaign(**data)
        case "post-star.close-month":
            return commands.ClosePostStarMonth(**data)
        case "studio.assess":
            return commands.AssessStudio(**data)
    raise ValueError(f"no command for {event.type}")


_EVENTS: EventTable = {
    events.CampaignOpened: ("campaign.opened", contract.OpenCampaign, "campaign_id"),
    events.RatingAccepted: ("rating.accepted", contract.RatingAccepted, "campaign_id"),
    events.CampaignClosed: ("campaign.closed", contract.CampaignClosed, "campaign_id"),
    events.HomeStarAwarded: ("home.star-awarded", contract.HomeStarAwarded, "campaign_id"),
    events.PostStarAwarded: ("post-star.awarded", contract.PostStarAwarded, "post_id"),
    events.PostStarMonthClosed: ("post-star.month-closed", contract.PostStarMonthClosed, None),
    events.StudioRewarded: ("studio.rewarded", contract.StudioRewarded, "studio_id"),
}


def to_emit(event: events.Event) -> Emit:
    return emit_from_table(_EVENTS, event, internal=("command_id",))
