"""Kafka entrypoint: a batch of contract commands becomes domain commands for the bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.scopes import Emit

from ..adapters import integration
from ..adapters.repository import SqlAlchemyUnitOfWork
from ..domain.commands import Command
from ..service_layer import messagebus


class CommandBatch:
    """The `BatchScope` of `membership.commands`: one unit of work for the whole batch."""

    def __init__(self, session: AsyncSession) -> None:
        self._uow = SqlAlchemyUnitOfWork(session)
        self._commands: dict[tuple[str, str], Command] = {}  # by (source, id): translated once, in prefetch

    async def prefetch(self, events: Sequence[CloudEvent[Any]]) -> None:
        self._commands = {(e.source, e.id): integration.to_command(e.type, e.data) for e in events}
        await self._uow.preload(self._commands.values())

    async def handle(self, event: CloudEvent[Any]) -> Sequence[Emit]:
        command = self._commands.pop((event.source, event.id), None) or integration.to_command(event.type, event.data)
        self._uow.begin_command()
        try:
            domain_events = await messagebus.handle(command, self._uow)
        except BaseException:  # a rejection, a hold or a failure: the command leaves no trace
            self._uow.discard_command()
            raise
        return [integration.to_emit(e) for e in domain_events]

    async def flush(self) -> None:
        await self._uow.flush()
