"""Kafka entrypoints of feedback, and its durable timer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.scopes import Emit

from ..adapters import integration
from ..adapters.metrics import FeedbackMetrics
from ..adapters.orm import membership_view
from ..adapters.repository import SqlAlchemyUnitOfWork, advance_stream_clock, stream_now
from ..domain import commands, events
from ..service_layer import handlers
from ..service_layer.handlers import Dependencies


class Handlers:
    def __init__(self, deps: Dependencies, metrics: FeedbackMetrics, overdue_clock: str,
                 quiet_seconds: float = 3.0) -> None:
        self.deps, self.metrics, self.overdue_clock, self.quiet_seconds = deps, metrics, overdue_clock, quiet_seconds
        self._last_command = 0.0  # monotonic time of the last command handled

    async def _run(self, session: AsyncSession, command: commands.Command) -> list[Emit]:
        emitted = await handlers.handle(command, SqlAlchemyUnitOfWork(session), self.deps)
        self._count(emitted)
        return [integration.to_emit(e) for e in emitted]

    def _count(self, emitted: list[events.Event]) -> None:
        for e in emitted:
            match e:
                case events.OpinionReceived():
                    self.metrics.received.labels(e.submission.channel).inc()
                case events.OpinionResponded():
                    self.metrics.response_seconds.observe(e.response_seconds)
                case events.OpinionRated():
                    self.metrics.satisfaction.observe(e.satisfaction)
                case events.OpinionOverdue():
                    self.metrics.overdue_total.inc()
                case events.VisitLogged():
                    self.metrics.visits.labels(e.place).inc()

    async def command(self, session: AsyncSession, event: CloudEvent[Any]) -> Sequence[Emit]:
        self._last_command = time.monotonic()
        command = integration.to_command(event)
        emitted = await self._run(session, command)
        business_time = {"opinion.submit": "submitted_at", "opinion.respond": "responded_at",
                         "visit.log": "visited_at"}.get(event.type)
        if business_time:
            await advance_stream_clock(session, getattr(event.data, business_time))
        return emitted

    async def membership_event(self, session: AsyncSession, event: CloudEvent[Any]) -> Sequence[Emit]:
        """Folds the event into the view; the runtime then releases the opinions it was awaited by."""
        await membership_view.apply(session, event)
        return ()

    async def mark_overdue(self, session: AsyncSession, now: datetime) -> Sequence[Emit]:
        """Durable timer: flag unanswered opinions past due, by wall or business time."""
        if self.overdue_clock == "wall":
            return await self._run(session, commands.MarkOverdue(now))
        if time.monotonic() - self._last_command < self.quiet_seconds:
            return []  # still reading: an answer may be on its way on another partition
        business_now = await stream_now(session)
        return await self._run(session, commands.MarkOverdue(business_now)) if business_now else []
