"""Kafka entrypoint of evaluation's commands (work scores have their own batch in
`adapters.work_scores`; membership's events fold into `unionhub_membership_view`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.scopes import CommandScope, ScopeFactory

from ..adapters import integration
from ..adapters.metrics import EvaluationMetrics
from ..adapters.unit_of_work import SqlAlchemyUnitOfWork
from ..service_layer import messagebus
from ..service_layer.handlers import Dependencies


def commands(deps: Dependencies, metrics: EvaluationMetrics) -> ScopeFactory:
    bus = messagebus.bus(deps)

    def scope(session: AsyncSession) -> CommandScope[SqlAlchemyUnitOfWork]:
        return CommandScope(SqlAlchemyUnitOfWork(session), bus, integration.to_command, integration.to_emit, metrics)

    return scope
