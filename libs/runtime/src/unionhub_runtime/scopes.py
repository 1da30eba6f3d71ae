"""How a service applies the messages of one batch inside the batch's transaction.

A `BatchScope` sees the whole batch first (`prefetch`: load what it needs in a few bulk
queries), then handles message after message, and writes its changes at `flush`. A message
that raises `Rejected` must leave no trace in the scope. Services with simple handlers use
`per_message`, which runs each one in a savepoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent, OutgoingEvent, encode


@dataclass(frozen=True)
class Emit:
    """An integration event a handler asks to publish."""

    type: str
    data: BaseModel
    key: str | None
    # The command this event answers (its id and source), when not the message being
    # handled (e.g. an opinion found overdue by a timer answers the opinion's submission).
    correlation_id: str | None = None
    correlation_source: str | None = None


def encode_emit(
    emit: Emit, *, source: str, correlation_id: str | None, correlation_source: str | None = None
) -> OutgoingEvent:
    """The wire form of `emit`: a fresh id, now, and the command it answers as correlation
    (the one the emit names, else the message being handled)."""
    if emit.correlation_id is not None:
        correlation_id, correlation_source = emit.correlation_id, emit.correlation_source
    return encode(
        event_id=str(uuid.uuid4()),
        event_type=emit.type,
        data=emit.data,
        source=source,
        time=datetime.now(UTC),
        correlation_id=correlation_id,
        correlation_source=correlation_source,
        key=emit.key,
    )


class BatchScope(Protocol):
    async def prefetch(self, events: Sequence[CloudEvent[Any]]) -> None: ...

    async def handle(self, event: CloudEvent[Any]) -> Sequence[Emit]: ...

    async def flush(self) -> None: ...


ScopeFactory = Callable[[AsyncSession], BatchScope]
Handler = Callable[[AsyncSession, CloudEvent[Any]], Awaitable[Sequence[Emit]]]


class _SavepointScope:
    def __init__(self, handler: Handler, session: AsyncSession) -> None:
        self._handler = handler
        self._session = session

    async def prefetch(self, events: Sequence[CloudEvent[Any]]) -> None:
        return None

    async def handle(self, event: CloudEvent[Any]) -> Sequence[Emit]:
        async with self._session.begin_nested():  # a rejection rolls back this message only
            return await self._handler(self._session, event)

    async def flush(self) -> None:
        return None


def per_message(handler: Handler) -> ScopeFactory:
    """A scope that applies each message with `handler` in a savepoint of its own."""
    return lambda session: _SavepointScope(handler, session)
