"""What the read API answers: every field of every route, so `/openapi.json` documents it.

The models describe what `adapters/views.py` returns, field for field: FastAPI drops from
an answer every field its response model does not declare."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from unionhub_contracts.feedback import Channel
from unionhub_runtime.http import not_found

from ..domain.model import Status

NOT_FOUND = not_found("no such opinion")


class Opinion(BaseModel):
    """An opinion, instants in RFC 3339 (UTC). Without the scope `feedback:read-text`, the
    fields text, response_text, command_id and command_source are absent (not null)."""

    # In the table's column order, as the view gives them. The fields shown only with the
    # scope have defaults and the route is served with `response_model_exclude_unset`: left
    # out by the handler, they are absent, not null.
    opinion_id: str
    member_id: str
    channel: Channel
    text: str | None = Field(default=None, description="the member's words (with feedback:read-text)")
    submitted_at: datetime
    campaign_id: str | None
    home_id: str | None
    category: str | None
    union_id: str = Field(description="the union the opinion is assigned to, the member's when submitted")
    due_at: datetime = Field(description="the answer is overdue after this instant")
    status: Status
    responder_id: str | None
    response_text: str | None = Field(default=None, description="the cadre's answer (with feedback:read-text)")
    responded_at: datetime | None
    response_seconds: float | None = Field(description="from submission to response")
    satisfaction: int | None = Field(description="the member's rating of the response, 1 to 5")
    overdue: bool = Field(description="not answered by due_at (stays true once answered late)")
    command_id: str | None = Field(
        default=None, description="the `opinion.submit` command's id (with feedback:read-text)"
    )
    command_source: str | None = Field(
        default=None, description="the `opinion.submit` command's source (with feedback:read-text)"
    )


class Stats(BaseModel):
    """Opinions assigned to a union, submitted in `year` (Asia/Shanghai) or ever."""

    union_id: str
    year: int | None
    received: int
    responded: int
    responded_in_time: int = Field(description="responded by due_at")
    overdue: int = Field(description="not answered by due_at, answered since or not")
    median_response_seconds: float | None = Field(description="null when none was answered")
    mean_satisfaction: float | None = Field(description="1 to 5, rounded to 2 decimals; null when none was rated")


class CadreVisits(BaseModel):
    cadre_id: str
    visits: int


class Visits(BaseModel):
    month: str = Field(description="YYYY-MM")
    cadres: list[CadreVisits] = Field(description="cadres who logged a visit in the month, by cadre_id")
