"""Feedback's unit of work: every command writes through, in a savepoint of its own (the
service's batches are capped for that: `FEEDBACK_BATCH_MAX_RECORDS`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.unit_of_work import SessionUnitOfWork

from ..service_layer.ports import UnitOfWork
from .repositories import Membership, Opinions, StreamClock, Visits


class SqlAlchemyUnitOfWork(SessionUnitOfWork, UnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.opinions = Opinions(session)
        self.membership = Membership(session)
        self.visits = Visits(session)
        self.clock = StreamClock(session, self.journal)

    def writes_through(self, command: Any) -> bool:
        return True
