"""Membership's commands and the handler of each."""

from __future__ import annotations

from unionhub_runtime.messagebus import MessageBus

from ..domain import commands
from . import handlers
from .ports import UnitOfWork

BUS: MessageBus[UnitOfWork] = MessageBus(
    {
        commands.RegisterUnion: handlers.register_union,
        commands.EnrollMember: handlers.enroll_member,
        commands.LeaveMember: handlers.leave_member,
        commands.TransferMember: handlers.transfer_member,
        commands.RegisterHome: handlers.register_home,
        commands.RegisterStation: handlers.register_station,
        commands.AppointCadre: handlers.appoint_cadre,
    }
)
handle = BUS.handle
