"""The union registry's aggregates and their rules. Pure Python: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any, Final, Literal

from unionhub_domain import Aggregate, Missing, Rejected, RejectionCode, same_again

from . import commands, events

# city federation > district federation > grassroots union
PARENT_LEVEL = {"district": "federation", "grassroots": "district"}
Status = Literal["active", "left"]
HistoryKind = Literal["enrolled", "reinstated", "left", "transferred_out", "transferred_in"]
ACTIVE: Final = "active"
LEFT: Final = "left"


def _state(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.compare}


def register_again(existing: Aggregate, command: commands.Command, what: str, repeat: events.Event) -> None:
    """A registration repeated: with the same data it answers again with `repeat`; with
    other data it is a conflict (the kernel's `same_again`)."""
    stored = _state(existing)
    same_again(existing, {k: v for k, v in _state(command).items() if k in stored}, what)
    existing.events.append(repeat)


@dataclass
class Union(Aggregate):
    union_id: str
    name: str
    level: str
    parent_id: str | None
    district: str | None
    kind: str | None
    founded_on: date

    @classmethod
    def register(cls, cmd: commands.RegisterUnion, parent: Union | None) -> Union:
        if cmd.parent_id is not None:
            if parent is None:
                raise Missing(
                    f"union:{cmd.parent_id}", RejectionCode.NOT_FOUND, f"parent union {cmd.parent_id} is not registered"
                )
            if PARENT_LEVEL.get(cmd.level) != parent.level:
                raise Rejected(RejectionCode.HIERARCHY, f"a {cmd.level} union cannot be under a {parent.level} union")
            if parent.level == "district" and parent.district != cmd.district:
                raise Rejected(
                    RejectionCode.HIERARCHY, f"district {cmd.district} differs from its parent's {parent.district}"
                )
        union = cls(**_state(cmd))
        union.events.append(events.UnionRegistered(**_state(cmd)))
        return union


@dataclass(frozen=True)
class HistoryEntry:
    """One step of a member's append-only membership history."""

    member_id: str
    union_id: str
    kind: HistoryKind
    on: date


@dataclass
class Member(Aggregate):
    member_id: str
    union_id: str
    status: Status
    joined_on: date
    left_on: date | None = None
    display_name: str | None = field(default=None, repr=False)  # personal: never in an event
    left_reason: str | None = field(default=None, repr=False)  # personal too: kept here only
    new_history: list[HistoryEntry] = field(default_factory=list, compare=False, repr=False)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @classmethod
    def enroll(cls, cmd: commands.EnrollMember) -> Member:
        member = cls(cmd.member_id, cmd.union_id, ACTIVE, cmd.joined_on, display_name=cmd.display_name)
        member._record(cmd.union_id, "enrolled", cmd.joined_on)
        member.events.append(events.MemberEnrolled(cmd.member_id, cmd.union_id, cmd.joined_on))
        return member

    def reenroll(self, cmd: commands.EnrollMember) -> bool:
        """Enrols a member who left again; False when it repeats the current enrolment
        (which changes nothing and answers with the same event again)."""
        if self.active:
            if (self.union_id, self.joined_on) == (cmd.union_id, cmd.joined_on):
                self.events.append(events.MemberEnrolled(cmd.member_id, cmd.union_id, cmd.joined_on))
                return False
            raise Rejected(RejectionCode.ALREADY_ACTIVE, f"member is active in union {self.union_id}")
        if self.left_on is not None and cmd.joined_on < self.left_on:
            raise Rejected(RejectionCode.DATE_ORDER, "joined_on is before the member's last leaving date")
        self.union_id, self.status, self.joined_on, self.left_on = cmd.union_id, ACTIVE, cmd.joined_on, None
        if cmd.display_name is not None:
            self.display_name = cmd.display_name
        self._record(cmd.union_id, "reinstated", cmd.joined_on)
        self.events.append(events.MemberEnrolled(cmd.member_id, cmd.union_id, cmd.joined_on))
        return True

    def leave(self, cmd: commands.LeaveMember) -> None:
        self._require_active()
        if cmd.left_on < self.joined_on:
            raise Rejected(RejectionCode.DATE_ORDER, "left_on is before the member joined")
        self.status, self.left_on, self.left_reason = LEFT, cmd.left_on, cmd.reason
        self._record(self.union_id, "left", cmd.left_on)
        self.events.append(events.MemberLeft(self.member_id, self.union_id, cmd.left_on))

    def transfer(self, cmd: commands.TransferMember) -> None:
        self._require_active()
        if cmd.to_union_id == self.union_id:
            raise Rejected(RejectionCode.SAME_UNION, f"member is already in union {self.union_id}")
        if cmd.transferred_on < self.joined_on:
            raise Rejected(RejectionCode.DATE_ORDER, "transferred_on is before the member joined")
        source = self.union_id
        self._record(source, "transferred_out", cmd.transferred_on)
        self._record(cmd.to_union_id, "transferred_in", cmd.transferred_on)
        self.union_id = cmd.to_union_id
        self.events.append(events.MemberTransferred(self.member_id, source, cmd.to_union_id, cmd.transferred_on))

    def _require_active(self) -> None:
        if not self.active:
            raise Rejected(RejectionCode.NOT_ACTIVE, "member is not active in any union")

    def _record(self, union_id: str, kind: HistoryKind, on: date) -> None:
        self.new_history.append(HistoryEntry(self.member_id, union_id, kind, on))


@dataclass
class Home(Aggregate):
    home_id: str
    union_id: str
    name: str
    category: str
    opened_on: date

    @classmethod
    def register(cls, cmd: commands.RegisterHome) -> Home:
        home = cls(**_state(cmd))
        home.events.append(events.HomeRegistered(**_state(cmd)))
        return home


@dataclass
class Station(Aggregate):
    station_id: str
    union_id: str
    name: str
    services: tuple[str, ...]
    opened_on: date

    @classmethod
    def register(cls, cmd: commands.RegisterStation) -> Station:
        station = cls(**_state(cmd))
        station.events.append(events.StationRegistered(**_state(cmd)))
        return station


@dataclass
class Cadre(Aggregate):
    member_id: str
    union_id: str
    role: str
    appointed_on: date

    @classmethod
    def appoint(cls, cmd: commands.AppointCadre, member: Member | None) -> Cadre:
        if member is None or not member.active or member.union_id != cmd.union_id:
            raise Rejected(RejectionCode.NOT_A_MEMBER, f"a cadre must be an active member of union {cmd.union_id}")
        cadre = cls(**_state(cmd))
        cadre.events.append(events.CadreAppointed(**_state(cmd)))
        return cadre
