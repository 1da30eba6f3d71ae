"""What membership is asked to do (imperative), independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


class Command:
    pass


@dataclass(frozen=True)
class RegisterUnion(Command):
    union_id: str
    name: str
    level: str
    parent_id: str | None
    district: str | None
    kind: str | None
    founded_on: date


@dataclass(frozen=True)
class EnrollMember(Command):
    member_id: str
    union_id: str
    joined_on: date
    display_name: str | None = None


@dataclass(frozen=True)
class LeaveMember(Command):
    member_id: str
    left_on: date
    reason: str


@dataclass(frozen=True)
class TransferMember(Command):
    member_id: str
    to_union_id: str
    transferred_on: date


@dataclass(frozen=True)
class RegisterHome(Command):
    home_id: str
    union_id: str
    name: str
    category: str
    opened_on: date


@dataclass(frozen=True)
class RegisterStation(Command):
    station_id: str
    union_id: str
    name: str
    services: tuple[str, ...]
    opened_on: date


@dataclass(frozen=True)
class AppointCadre(Command):
    member_id: str
    union_id: str
    role: str
    appointed_on: date
