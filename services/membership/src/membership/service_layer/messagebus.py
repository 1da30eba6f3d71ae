"""Routes a domain command to its handler and returns the events it caused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..domain import commands
from ..domain.events import Event
from . import handlers
from .unit_of_work import AbstractUnitOfWork

COMMAND_HANDLERS: dict[type[commands.Command], Callable[[Any, AbstractUnitOfWork], Awaitable[None]]] = {
    commands.RegisterUnion: handlers.register_union,
    commands.EnrollMember: handlers.enroll_member,
    commands.LeaveMember: handlers.leave_member,
    commands.TransferMember: handlers.transfer_member,
    commands.RegisterHome: handlers.register_home,
    commands.RegisterStation: handlers.register_station,
    commands.AppointCadre: handlers.appoint_cadre,
}


async def handle(command: commands.Command, uow: AbstractUnitOfWork) -> list[Event]:
    await COMMAND_HANDLERS[type(command)](command, uow)
    return list(uow.collect_new_events())
