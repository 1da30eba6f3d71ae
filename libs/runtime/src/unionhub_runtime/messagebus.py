"""Routes a domain command to its handler and returns the events it caused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from unionhub_domain import Rejected

from .unit_of_work import AbstractUnitOfWork

U = TypeVar("U", bound=AbstractUnitOfWork, contravariant=True)  # a bus for a port serves its adapters
Handler = Callable[[Any, U], Awaitable[None]]
RejectionHandler = Callable[[Any, Rejected, U], Awaitable[None]]


class MessageBus(Generic[U]):
    """A service's command handlers by command type (dependencies already bound), and what
    to record when a command of a type is rejected (after its changes are discarded)."""

    def __init__(
        self, handlers: Mapping[type, Handler[U]], on_rejected: Mapping[type, RejectionHandler[U]] | None = None
    ) -> None:
        self._handlers = dict(handlers)
        self._on_rejected = dict(on_rejected or {})

    async def handle(self, command: Any, uow: U) -> list[Any]:
        await self._handlers[type(command)](command, uow)
        return list(uow.collect_new_events())

    async def rejected(self, command: Any, rejection: Rejected, uow: U) -> None:
        if (record := self._on_rejected.get(type(command))) is not None:
            await record(command, rejection, uow)
