"""Kafka entrypoints of evaluation: commands and membership events (work scores have
their own batch in `adapters.work_scores`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.errors import Missing, Rejected
from unionhub_runtime.scopes import Emit

from ..adapters import integration
from ..adapters.batching import RatingBatchUnitOfWork
from ..adapters.metrics import EvaluationMetrics
from ..adapters.orm import membership_view
from ..adapters.repository import SqlAlchemyUnitOfWork
from ..domain import commands, events
from ..service_layer import messagebus
from ..service_layer.handlers import Dependencies
from ..service_layer.unit_of_work import AbstractUnitOfWork


class Handlers:
    """Entrypoints bound to their dependencies (the composition root makes one)."""

    def __init__(self, deps: Dependencies, metrics: EvaluationMetrics) -> None:
        self.deps = deps
        self.metrics = metrics

    async def _run(self, session: AsyncSession, command: commands.Command,
                   uow: AbstractUnitOfWork | None = None) -> list[Emit]:
        domain_events = await messagebus.handle(command, uow or SqlAlchemyUnitOfWork(session), self.deps)
        for event in domain_events:
            if isinstance(event, events.RatingAccepted):
                self.metrics.ratings.labels(event.rater_kind, "accepted", "").inc()
        return [integration.to_emit(e) for e in domain_events]

    async def command(self, session: AsyncSession, event: CloudEvent[Any]) -> Sequence[Emit]:
        """Any command but ratings, in a savepoint of its own."""
        async with session.begin_nested():
            return await self._run(session, integration.to_command(event))

    async def rating(self, uow: RatingBatchUnitOfWork, command: commands.SubmitRating) -> Sequence[Emit]:
        mark = uow.mark()
        try:
            emitted = await self._run(uow.session, command, uow)
        except Missing:
            uow.undo(mark)  # held by the runtime: no trace until it is applied or rejected
            self.metrics.ratings.labels(command.rater_kind, "held", "").inc()
            raise
        except Rejected as rejection:
            uow.undo(mark)
            await uow.ratings.audit(command, "rejected", rejection.code, rejection.reason, self.deps.now())
            self.metrics.ratings.labels(command.rater_kind, "rejected", rejection.code).inc()
            raise
        return emitted

    async def membership_event(self, session: AsyncSession, event: CloudEvent[Any]) -> Sequence[Emit]:
        """Folds the event into the view; the runtime then releases the ratings it was awaited by."""
        await membership_view.apply(session, event)
        return ()


class CommandScope:
    """The `BatchScope` of `evaluation.commands`: ratings in groups, the rest one by one."""

    def __init__(self, handlers: Handlers, session: AsyncSession) -> None:
        self._handlers, self._session = handlers, session
        self._ratings = RatingBatchUnitOfWork(session)
        self._translated_ratings: dict[tuple[str, str], commands.SubmitRating] = {}  # by (source, id), in prefetch

    async def prefetch(self, events: Sequence[CloudEvent[Any]]) -> None:
        translated = {(e.source, e.id): integration.to_command(e) for e in events if e.type == "rating.submit"}
        self._translated_ratings = {i: c for i, c in translated.items() if isinstance(c, commands.SubmitRating)}
        await self._ratings.preload(list(self._translated_ratings.values()))

    async def handle(self, event: CloudEvent[Any]) -> Sequence[Emit]:
        if event.type == "rating.submit":
            rating = self._translated_ratings.pop((event.source, event.id), None) or integration.to_command(event)
            assert isinstance(rating, commands.SubmitRating)
            return await self._handlers.rating(self._ratings, rating)
        # Another command may read what the ratings so far changed, or change what they read.
        await self._ratings.write()
        self._ratings = RatingBatchUnitOfWork(self._session)
        return await self._handlers.command(self._session, event)

    async def flush(self) -> None:
        await self._ratings.write()
