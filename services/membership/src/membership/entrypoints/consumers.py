"""Kafka entrypoint of membership: `membership.commands`, a batch in one unit of work."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.scopes import CommandScope, ScopeFactory

from ..adapters import integration
from ..adapters.unit_of_work import SqlAlchemyUnitOfWork
from ..service_layer import messagebus


def commands() -> ScopeFactory:
    def scope(session: AsyncSession) -> CommandScope[SqlAlchemyUnitOfWork]:
        return CommandScope(SqlAlchemyUnitOfWork(session), messagebus.BUS, integration.to_command, integration.to_emit)

    return scope
