"""Kafka entrypoint of feedback's commands, and its durable timer flagging overdue opinions
(membership's events fold into `unionhub_membership_view`)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from unionhub_domain import Rejected
from unionhub_runtime.scopes import CommandScope, Emit

from ..adapters import integration
from ..adapters.metrics import FeedbackMetrics
from ..adapters.unit_of_work import SqlAlchemyUnitOfWork
from ..domain import commands
from ..service_layer import messagebus
from ..service_layer.handlers import Dependencies


class Consumers:
    """The commands' scope and the overdue timer, over one bus. With the events clock the
    timer watches commands go by: partitions are read unevenly, so business time seen on one
    may run ahead of an answer still unread on another; it flags by business time only once
    no transaction with commands is under way (one that read an answer, to apply or to hold
    it, shows neither until it commits, however long it takes) and none ended for
    `quiet_seconds` (all that was sent has been read)."""

    def __init__(
        self,
        deps: Dependencies,
        metrics: FeedbackMetrics,
        overdue_clock: Literal["wall", "events"],
        quiet_seconds: float = 3.0,
    ) -> None:
        self._bus, self._metrics = messagebus.bus(deps), metrics
        self._overdue_clock, self._quiet_seconds = overdue_clock, quiet_seconds
        self._last_command = 0.0  # monotonic time the last transaction running commands ended
        # Sessions that ran commands (a batch, held ones retried): under way while in a
        # transaction. Asked, not counted: a session whose end is never reported (a task
        # cancelled as its connection is checked in) drops out once it is closed or gone.
        self._running: weakref.WeakSet[Session] = weakref.WeakSet()

    def commands(self, session: AsyncSession) -> CommandScope[SqlAlchemyUnitOfWork]:
        sync = session.sync_session
        if sync not in self._running:
            self._running.add(sync)
            event.listen(sync, "after_transaction_end", self._transaction_ended)
        return CommandScope(SqlAlchemyUnitOfWork(session), self._bus, integration.to_command, integration.to_emit, self)

    def _transaction_ended(self, session: Session, transaction: SessionTransaction) -> None:
        """Its root transaction committed or rolled back (savepoints end inside it)."""
        if transaction.parent is None:
            self._last_command = time.monotonic()

    def _under_way(self) -> bool:
        return any(session.in_transaction() for session in list(self._running))

    def applied(self, command: Any, emitted: Sequence[Any]) -> None:
        self._metrics.applied(command, emitted)

    def refused(self, command: Any, rejection: Rejected) -> None:
        return None  # feedback's business metrics follow what was applied

    async def mark_overdue(self, session: AsyncSession, now: datetime) -> Sequence[Emit]:
        """Durable timer: flag unanswered opinions past due, by wall or business time."""
        if self._overdue_clock == "events" and (
            self._under_way() or time.monotonic() - self._last_command < self._quiet_seconds
        ):
            return []  # still reading: an answer may be on its way on another partition
        uow = SqlAlchemyUnitOfWork(session)
        command = commands.MarkOverdue(now if self._overdue_clock == "wall" else None)
        emitted = await self._bus.handle(command, uow)
        self._metrics.applied(command, emitted)
        return [integration.to_emit(e) for e in emitted]
