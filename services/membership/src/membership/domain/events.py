"""What happened in membership (past tense). Mapped to integration events at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class UnionRegistered(Event):
    union_id: str
    name: str
    level: str
    parent_id: str | None
    district: str | None
    kind: str | None
    founded_on: date


@dataclass(frozen=True)
class MemberEnrolled(Event):
    member_id: str
    union_id: str
    joined_on: date


@dataclass(frozen=True)
class MemberLeft(Event):
    member_id: str
    union_id: str
    left_on: date


@dataclass(frozen=True)
class MemberTransferred(Event):
    member_id: str
    from_union_id: str
    to_union_id: str
    transferred_on: date


@dataclass(frozen=True)
class HomeRegistered(Event):
    home_id: str
    union_id: str
    name: str
    category: str
    opened_on: date


@dataclass(frozen=True)
class StationRegistered(Event):
    station_id: str
    union_id: str
    name: str
    services: tuple[str, ...]
    opened_on: date


@dataclass(frozen=True)
class CadreAppointed(Event):
    member_id: str
    union_id: str
    role: str
    appointed_on: date
