"""Kafka entrypoint: a contract command becomes a domain command for the message bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.pipeline import Emit

from ..adapters import integration
from ..adapters.repository import SqlAlchemyUnitOfWork
from ..service_layer import messagebus


async def handle_command(session: AsyncSession, event: CloudEvent[Any]) -> Sequence[Emit]:
    command = integration.to_command(event.type, event.data)
    domain_events = await messagebus.handle(command, SqlAlchemyUnitOfWork(session))
    return [integration.to_emit(e) for e in domain_events]
