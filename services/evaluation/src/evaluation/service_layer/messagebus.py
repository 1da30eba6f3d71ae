"""Evaluation's commands, the handler of each, and what a rejected rating records."""

from __future__ import annotations

from functools import partial

from unionhub_runtime.messagebus import MessageBus

from ..domain import commands
from . import handlers
from .handlers import Dependencies
from .ports import UnitOfWork


def bus(deps: Dependencies) -> MessageBus[UnitOfWork]:
    return MessageBus(
        {
            commands.OpenCampaign: partial(handlers.open_campaign, deps=deps),
            commands.SubmitRating: partial(handlers.submit_rating, deps=deps),
            commands.CloseCampaign: partial(handlers.close_campaign, deps=deps),
            commands.ClosePostStarMonth: partial(handlers.close_post_star_month, deps=deps),
            commands.AssessStudio: partial(handlers.assess_studio, deps=deps),
        },
        on_rejected={commands.SubmitRating: partial(handlers.record_rejected_rating, deps=deps)},
    )
