"""feedback: commands on `feedback.commands`, events on `feedback.events`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from .common import ContractModel, Id, Month

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class Channel(StrEnum):
    RATING_PAGE = "rating_page"
    VISIT = "visit"
    STATION = "station"
    HOTLINE = "hotline"


class VisitPlace(StrEnum):
    PRODUCTION_LINE = "production_line"
    DORMITORY = "dormitory"
    CANTEEN = "canteen"
    OFFICE = "office"
    OTHER = "other"


class SubmitOpinion(ContractModel):
    opinion_id: Id
    member_id: Id
    channel: Channel
    text: Text
    submitted_at: AwareDatetime
    campaign_id: Id | None = None
    home_id: Id | None = None
    category: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class OpinionReceived(ContractModel):
    """The opinion's text stays in feedback; events carry only what routing needs."""

    opinion_id: Id
    member_id: Id
    channel: Channel
    submitted_at: datetime
    campaign_id: Id | None = None
    home_id: Id | None = None
    category: str | None = None


class OpinionAssigned(ContractModel):
    opinion_id: Id
    union_id: Id
    due_at: datetime


class RespondOpinion(ContractModel):
    opinion_id: Id
    responder_id: Id
    text: Text
    responded_at: AwareDatetime


class OpinionResponded(ContractModel):
    opinion_id: Id
    union_id: Id
    response_seconds: float


class RateOpinion(ContractModel):
    opinion_id: Id
    member_id: Id
    satisfaction: Annotated[int, Field(ge=1, le=5)]


class OpinionRated(ContractModel):
    opinion_id: Id
    union_id: Id
    satisfaction: int


class OpinionOverdue(ContractModel):
    opinion_id: Id
    union_id: Id
    due_at: datetime


class LogVisit(ContractModel):
    visit_id: Id
    cadre_id: Id
    place: VisitPlace
    visited_at: AwareDatetime
    opinions_collected: Annotated[int, Field(ge=0)]


class VisitLogged(ContractModel):
    visit_id: Id
    cadre_id: Id
    place: VisitPlace
    visited_at: datetime
    opinions_collected: int


class CloseVisitsMonth(ContractModel):
    month: Month


class VisitsMonthClosed(ContractModel):
    """Added in v1 (optional to consume): every close-month answers, even with no miss."""

    month: Month
    cadres_checked: int
    quota_missed: int


class VisitQuotaMissed(ContractModel):
    month: Month
    cadre_id: Id
    union_id: Id
    visits: int
