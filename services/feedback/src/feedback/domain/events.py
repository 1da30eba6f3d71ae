"""What happened in feedback (and the submission an opinion starts from)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Submission:
    """`opinion.submit` as received: what an opinion starts from."""

    opinion_id: str
    member_id: str
    channel: str
    text: str
    submitted_at: datetime
    campaign_id: str | None
    home_id: str | None
    category: str | None
    command_id: str
    command_source: str | None = None  # with command_id, names the command (CloudEvents)


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class OpinionReceived(Event):
    submission: Submission


@dataclass(frozen=True)
class OpinionAssigned(Event):
    opinion_id: str
    union_id: str
    due_at: datetime
    command_id: str
    command_source: str | None = None


@dataclass(frozen=True)
class OpinionResponded(Event):
    opinion_id: str
    union_id: str
    response_seconds: float


@dataclass(frozen=True)
class OpinionRated(Event):
    opinion_id: str
    union_id: str
    satisfaction: int


@dataclass(frozen=True)
class OpinionOverdue(Event):
    opinion_id: str
    union_id: str
    due_at: datetime
    command_id: str | None = None
    command_source: str | None = None


@dataclass(frozen=True)
class VisitLogged(Event):
    visit_id: str
    cadre_id: str
    place: str
    visited_at: datetime
    opinions_collected: int


@dataclass(frozen=True)
class VisitQuotaMissed(Event):
    month: str
    cadre_id: str
    union_id: str
    visits: int


@dataclass(frozen=True)
class VisitsMonthClosed(Event):
    month: str
    cadres_checked: int
    quota_missed: int
