"""Routes a domain command to its handler and returns the events it caused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..domain import commands
from ..domain.events import Event
from . import handlers
from .handlers import Dependencies
from .unit_of_work import AbstractUnitOfWork

HANDLERS: dict[type[commands.Command], Callable[[Any, AbstractUnitOfWork, Dependencies], Awaitable[None]]] = {
    commands.OpenCampaign: handlers.open_campaign,
    commands.SubmitRating: handlers.submit_rating,
    commands.CloseCampaign: handlers.close_campaign,
    commands.ClosePostStarMonth: handlers.close_post_star_month,
    commands.AssessStudio: handlers.assess_studio,
}


async def handle(command: commands.Command, uow: AbstractUnitOfWork, deps: Dependencies) -> list[Event]:
    await HANDLERS[type(command)](command, uow, deps)
    return list(uow.collect_new_events())
