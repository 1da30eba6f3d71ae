"""membership: commands on `membership.commands`, events on `membership.events`."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from .common import ContractModel, Id, Name


class UnionLevel(StrEnum):
    FEDERATION = "federation"
    DISTRICT = "district"
    GRASSROOTS = "grassroots"


class UnionKind(StrEnum):
    INDEPENDENT = "independent"
    JOINT = "joint"


class HomeCategory(StrEnum):
    ENTERPRISE = "enterprise"
    DEMONSTRATION = "demonstration"
    PUBLIC_AREA = "public_area"


class StationService(StrEnum):
    WATER = "water"
    HOT_MEAL = "hot_meal"
    REST = "rest"
    CHARGING = "charging"
    RESTROOM = "restroom"
    FIRST_AID = "first_aid"


class CadreRole(StrEnum):
    CHAIR = "chair"
    VICE_CHAIR = "vice_chair"
    PART_TIME_VICE_CHAIR = "part_time_vice_chair"
    FULL_TIME_CADRE = "full_time_cadre"
    SOCIAL_WORKER = "social_worker"


class UnionData(ContractModel):
    """`union.register` and `union.registered`."""

    union_id: Id
    name: Name
    level: UnionLevel
    parent_id: Id | None = None
    district: Name | None = None
    kind: UnionKind | None = None
    founded_on: date

    @model_validator(mode="after")
    def _shape_matches_level(self) -> UnionData:
        if (self.parent_id is None) != (self.level is UnionLevel.FEDERATION):
            raise ValueError("parent_id is null for a federation and required for every other level")
        if (self.kind is None) == (self.level is UnionLevel.GRASSROOTS):
            raise ValueError("kind is required for a grassroots union and only for one")
        if self.district is None and self.level is not UnionLevel.FEDERATION:
            raise ValueError("district is required for district and grassroots unions")
        return self


class EnrollMember(ContractModel):
    """`member.enroll`; `display_name` is personal data and stays in membership."""

    member_id: Id
    union_id: Id
    joined_on: date
    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class MemberEnrolled(ContractModel):
    member_id: Id
    union_id: Id
    joined_on: date


class LeaveMember(ContractModel):
    member_id: Id
    left_on: date
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class MemberLeft(ContractModel):
    member_id: Id
    union_id: Id
    left_on: date
    # The member's reason is personal: membership keeps it and no longer publishes it. The
    # field stays (optional) so readers built against the earlier schema still validate.
    reason: str | None = None


class TransferMember(ContractModel):
    member_id: Id
    to_union_id: Id
    transferred_on: date


class MemberTransferred(ContractModel):
    member_id: Id
    from_union_id: Id
    to_union_id: Id
    transferred_on: date


class HomeData(ContractModel):
    """`home.register` and `home.registered`."""

    home_id: Id
    union_id: Id
    name: Name
    category: HomeCategory
    opened_on: date


class StationData(ContractModel):
    """`station.register` and `station.registered`."""

    station_id: Id
    union_id: Id
    name: Name
    services: Annotated[list[StationService], Field(min_length=1, max_length=len(StationService))]
    opened_on: date

    @model_validator(mode="after")
    def _services_unique(self) -> StationData:
        if len(set(self.services)) != len(self.services):
            raise ValueError("services must not repeat")
        return self


class CadreData(ContractModel):
    """`cadre.appoint` and `cadre.appointed`."""

    member_id: Id
    union_id: Id
    role: CadreRole
    appointed_on: date


def prerequisites(event_type: str, data: Any) -> list[str]:
    """The prerequisite keys a membership event makes known, in the form `command.held`
    names what a command waits for: "union:<id>", "member:<id>", "home:<id>", "cadre:<id>"."""
    match event_type:
        case "union.registered":
            return [f"union:{data.union_id}"]
        case "member.enrolled" | "member.left" | "member.transferred":
            return [f"member:{data.member_id}"]
        case "home.registered":
            return [f"home:{data.home_id}"]
        case "cadre.appointed":
            return [f"cadre:{data.member_id}", f"member:{data.member_id}"]
    return []
