"""Feedback's rules: opinions answered in time and rated once; visit quotas. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from unionhub_domain import Aggregate, Rejected, RejectionCode

from . import events
from .events import Submission

VISIT_QUOTA = 4  # each full-time cadre makes at least 4 grassroots visits a month
Status = Literal["assigned", "responded", "rated"]
ASSIGNED: Final = "assigned"
RESPONDED: Final = "responded"
RATED: Final = "rated"


@dataclass
class Opinion(Aggregate):
    opinion_id: str
    member_id: str
    channel: str
    text: str
    submitted_at: datetime
    campaign_id: str | None
    home_id: str | None
    category: str | None
    union_id: str
    due_at: datetime
    status: Status = ASSIGNED
    responder_id: str | None = None
    response_text: str | None = None
    responded_at: datetime | None = None
    response_seconds: float | None = None
    satisfaction: int | None = None
    overdue: bool = False
    command_id: str | None = None  # the submission's: later events of the opinion correlate to it
    command_source: str | None = None

    @classmethod
    def assign(cls, submission: Submission, union_id: str, deadline: timedelta) -> Opinion:
        """A submitted opinion routed to the member's union, due `deadline` later."""
        opinion = cls(**vars(submission), union_id=union_id, due_at=submission.submitted_at + deadline)
        opinion.events += [
            events.OpinionReceived(submission),
            events.OpinionAssigned(
                submission.opinion_id, union_id, opinion.due_at, submission.command_id, submission.command_source
            ),
        ]
        return opinion

    def respond(self, responder_id: str, responder_union: str | None, text: str, at: datetime) -> None:
        if self.status != ASSIGNED:
            raise Rejected(RejectionCode.CLOSED, f"opinion {self.opinion_id} was answered already")
        if responder_union != self.union_id:
            raise Rejected(RejectionCode.FORBIDDEN, f"only a cadre of union {self.union_id} may answer")
        if at < self.submitted_at:
            raise Rejected(RejectionCode.DATE_ORDER, "responded_at is before the opinion was submitted")
        self.status, self.responder_id, self.response_text, self.responded_at = RESPONDED, responder_id, text, at
        self.response_seconds = (at - self.submitted_at).total_seconds()
        self.events.append(events.OpinionResponded(self.opinion_id, self.union_id, self.response_seconds))
        if at > self.due_at:
            self.mark_overdue()

    def rate(self, member_id: str, satisfaction: int) -> None:
        if member_id != self.member_id:
            raise Rejected(RejectionCode.FORBIDDEN, "only the member who submitted the opinion may rate the answer")
        if self.status == ASSIGNED:
            raise Rejected(RejectionCode.NOT_RESPONDED, f"opinion {self.opinion_id} has no answer to rate yet")
        if self.status == RATED:
            raise Rejected(RejectionCode.ALREADY_RATED, f"opinion {self.opinion_id} was rated already")
        self.status, self.satisfaction = RATED, satisfaction
        self.events.append(events.OpinionRated(self.opinion_id, self.union_id, satisfaction))

    def mark_overdue(self) -> None:
        """Not answered by `due_at`: said once, whether the timer or a late answer notices first."""
        if not self.overdue:
            self.overdue = True
            self.events.append(
                events.OpinionOverdue(self.opinion_id, self.union_id, self.due_at, self.command_id, self.command_source)
            )


@dataclass(frozen=True)
class Visit:
    visit_id: str
    cadre_id: str
    place: str
    visited_at: datetime
    opinions_collected: int


def quota_misses(month: str, full_time: dict[str, str], visits: dict[str, int]) -> list[events.VisitQuotaMissed]:
    """Full-time cadres (cadre -> union) with fewer than 4 visits in `month`."""
    return [
        events.VisitQuotaMissed(month, cadre, union, visits.get(cadre, 0))
        for cadre, union in sorted(full_time.items())
        if visits.get(cadre, 0) < VISIT_QUOTA
    ]
