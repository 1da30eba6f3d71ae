"""Translation at the edge: contract commands in, integration events out."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from unionhub_contracts import CloudEvent
from unionhub_contracts import feedback as contract
from unionhub_runtime.scopes import Emit, EventTable, emit_from_table

from ..domain import commands, events


def to_command(event: CloudEvent[Any]) -> commands.Command:
    data = event.data.model_dump()
    match event.type:
        case "opinion.submit":
            return commands.SubmitOpinion(events.Submission(**data, command_id=event.id, command_source=event.source))
        case "opinion.respond":
            return commands.RespondOpinion(**data)
        case "opinion.rate":
            return commands.RateOpinion(**data)
        case "visit.log":
            return commands.LogVisit(**data)
        case "visits.close-month":
            return commands.CloseVisitsMonth(**data)
    raise ValueError(f"no command for {event.type}")


_EVENTS: EventTable = {
    events.OpinionResponded: ("opinion.responded", contract.OpinionResponded, "opinion_id"),
    events.OpinionRated: ("opinion.rated", contract.OpinionRated, "opinion_id"),
    events.VisitLogged: ("visit.logged", contract.VisitLogged, "cadre_id"),
    events.VisitQuotaMissed: ("visit.quota-missed", contract.VisitQuotaMissed, "cadre_id"),
    events.VisitsMonthClosed: ("visits.month-closed", contract.VisitsMonthClosed, None),
}


def to_emit(event: events.Event) -> Emit:
    match event:
        case events.OpinionReceived(submission=sub):  # the text stays here: events carry no text
            data = contract.OpinionReceived.model_validate(
                {k: v for k, v in asdict(sub).items() if k not in ("text", "command_id", "command_source")},
                strict=False,
            )
            return Emit(
                "opinion.received",
                data,
                key=sub.opinion_id,
                correlation_id=sub.command_id,
                correlation_source=sub.command_source,
            )
        case events.OpinionAssigned():
            assigned = contract.OpinionAssigned(
                opinion_id=event.opinion_id, union_id=event.union_id, due_at=event.due_at
            )
            return Emit(
                "opinion.assigned",
                assigned,
                key=event.opinion_id,
                correlation_id=event.command_id,
                correlation_source=event.command_source,
            )
        case events.OpinionOverdue():  # found by the timer, caused by the submission
            overdue = contract.OpinionOverdue(opinion_id=event.opinion_id, union_id=event.union_id, due_at=event.due_at)
            return Emit(
                "opinion.overdue",
                overdue,
                key=event.opinion_id,
                correlation_id=event.command_id,
                correlation_source=event.command_source,
            )
    return emit_from_table(_EVENTS, event)
