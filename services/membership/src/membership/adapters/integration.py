"""Translation at the edge: contract commands in, integration events out."""

from __future__ import annotations

from typing import Any

from unionhub_contracts import CloudEvent
from unionhub_contracts import membership as contract
from unionhub_runtime.scopes import Emit, EventTable, emit_from_table

from ..domain import commands, events

COMMANDS: dict[str, type[commands.Command]] = {
    "union.register": commands.RegisterUnion,
    "member.enroll": commands.EnrollMember,
    "member.leave": commands.LeaveMember,
    "member.transfer": commands.TransferMember,
    "home.register": commands.RegisterHome,
    "station.register": commands.RegisterStation,
    "cadre.appoint": commands.AppointCadre,
}

EVENTS: EventTable = {
    events.UnionRegistered: ("union.registered", contract.UnionData, "union_id"),
    events.MemberEnrolled: ("member.enrolled", contract.MemberEnrolled, "member_id"),
    events.MemberLeft: ("member.left", contract.MemberLeft, "member_id"),
    events.MemberTransferred: ("member.transferred", contract.MemberTransferred, "member_id"),
    events.HomeRegistered: ("home.registered", contract.HomeData, "home_id"),
    events.StationRegistered: ("station.registered", contract.StationData, "station_id"),
    events.CadreAppointed: ("cadre.appointed", contract.CadreData, "member_id"),
}


def to_command(event: CloudEvent[Any]) -> commands.Command:
    fields: dict[str, Any] = event.data.model_dump()
    if "services" in fields:
        fields["services"] = tuple(fields["services"])
    return COMMANDS[event.type](**fields)


def to_emit(event: events.Event) -> Emit:
    return emit_from_table(EVENTS, event)
