"""What feedback is asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .events import Submission


class Command:
    pass


@dataclass(frozen=True)
class SubmitOpinion(Command):
    submission: Submission


@dataclass(frozen=True)
class RespondOpinion(Command):
    opinion_id: str
    responder_id: str
    text: str
    responded_at: datetime


@dataclass(frozen=True)
class RateOpinion(Command):
    opinion_id: str
    member_id: str
    satisfaction: int


@dataclass(frozen=True)
class LogVisit(Command):
    visit_id: str
    cadre_id: str
    place: str
    visited_at: datetime
    opinions_collected: int


@dataclass(frozen=True)
class CloseVisitsMonth(Command):
    month: str


@dataclass(frozen=True)
class MarkOverdue(Command):
    now: datetime | None  # None: by business time, the latest seen in commands
