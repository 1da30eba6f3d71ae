"""What the read API answers: every field of every route, so `/openapi.json` documents it.

The models describe what `adapters/views.py` returns, field for field: FastAPI drops from
an answer every field its response model does not declare."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from unionhub_contracts.membership import UnionKind, UnionLevel
from unionhub_runtime.http import not_found

from ..domain.model import HistoryKind, Status

NOT_FOUND = not_found("no such id here")
# Declaring a 422 replaces FastAPI's own; a refusal by the handler is a Problem, not a list of errors.
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "a parameter is invalid, or the parameters do not go together",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/HTTPValidationError"},
                        {"$ref": "#/components/schemas/Problem"},
                    ]
                }
            }
        },
    }
}


class Union(BaseModel):
    union_id: str
    name: str
    level: UnionLevel
    parent_id: str | None = Field(description="the union one level up; null for a federation")
    district: str | None = Field(description="set for district and grassroots unions")
    kind: UnionKind | None = Field(description="a grassroots union's; null at the other levels")
    founded_on: date
    active_members: int = Field(description="members whose status is active now")


class ListedMember(BaseModel):
    """A member of the union now or before (the listing without `on`)."""

    member_id: str
    status: Status
    joined_on: date
    left_on: date | None


class ActiveMemberOn(BaseModel):
    """A member who was active in the union on the date asked for (the listing with `on`)."""

    member_id: str
    status: Literal["active"]
    on: date = Field(description="the date asked for")


class UnionMembers(BaseModel):
    union_id: str
    items: list[ListedMember] | list[ActiveMemberOn] = Field(
        description="ordered by member_id; ActiveMemberOn items when `on` is given"
    )
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last page")


class HistoryEntry(BaseModel):
    union_id: str
    kind: HistoryKind
    on: date


class Member(BaseModel):
    """A member's status and dates; never personal data."""

    member_id: str
    union_id: str = Field(description="the union now, or the last one for a member who left")
    status: Status
    joined_on: date
    left_on: date | None
    history: list[HistoryEntry] = Field(description="in the order the commands recorded them")


class Growth(BaseModel):
    """A year's growth, for unions of one district or (district null) the whole city."""

    year: int
    district: str | None
    new_independent_unions: int = Field(description="independent grassroots unions founded in the year")
    new_unions_100_plus: int = Field(
        description="grassroots unions founded in the year with at least 100 active members now"
    )
    new_members: int = Field(
        description="enrolments applied with joined_on in the year, re-enrolments included; a transfer is not one"
    )
    new_homes: int
    new_stations: int
