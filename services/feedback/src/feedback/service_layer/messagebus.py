"""Feedback's commands and the handler of each."""

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
            commands.SubmitOpinion: partial(handlers.submit_opinion, deps=deps),
            commands.RespondOpinion: partial(handlers.respond_opinion, deps=deps),
            commands.RateOpinion: partial(handlers.rate_opinion, deps=deps),
            commands.MarkOverdue: partial(handlers.mark_overdue, deps=deps),
            commands.LogVisit: partial(handlers.log_visit, deps=deps),
            commands.CloseVisitsMonth: partial(handlers.close_visits_month, deps=deps),
        }
    )
