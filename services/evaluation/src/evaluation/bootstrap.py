"""The composition root of evaluation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from unionhub_contracts import asyncapi
from unionhub_contracts.catalogue import EVALUATION_COMMANDS, EVALUATION_EVENTS, MEMBERSHIP_EVENTS, WORK_SCORES
from unionhub_runtime.membership_view import view_router
from unionhub_runtime.scopes import per_message
from unionhub_runtime.service import Service, ServiceDefinition, Subscription
from unionhub_runtime.timers import Clock, Timer, utc_now

from .adapters.metrics import EvaluationMetrics
from .adapters.orm import membership_view, runtime_tables
from .adapters.work_scores import WorkScoreBatch
from .entrypoints import api
from .entrypoints.consumers import CommandScope, Handlers
from .service_layer.handlers import Dependencies
from .settings import EvaluationSettings

NAME = "evaluation"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: EvaluationSettings | None = None, clock: Clock = utc_now) -> Service:
    settings = settings or EvaluationSettings()
    registry = CollectorRegistry()
    metrics = EvaluationMetrics(registry)
    handlers = Handlers(Dependencies(now=clock, grace=timedelta(seconds=settings.member_grace_seconds)), metrics)
    return Service(
        ServiceDefinition(
            name=NAME,
            settings=settings,
            tables=runtime_tables,
            events_topic=EVALUATION_EVENTS.name,
            subscriptions=[
                Subscription(EVALUATION_COMMANDS.name, lambda s: CommandScope(handlers, s), rejects=True),
                Subscription(MEMBERSHIP_EVENTS.name, per_message(handlers.membership_event), rejects=False),
                Subscription(WORK_SCORES.name, lambda s: WorkScoreBatch(s, metrics.work_items, metrics.work_duplicates),
                             rejects=True, max_records=settings.work_batch_max_records, bulk=True),
            ],
            asyncapi=asyncapi.document(
                NAME, receives=[EVALUATION_COMMANDS.name, WORK_SCORES.name, MEMBERSHIP_EVENTS.name],
                sends=[EVALUATION_EVENTS.name]),
            routers=[api.router, view_router(membership_view)],
            registry=registry,
            gauges=[metrics.refresh],
            timers=[Timer("settle-pending-ratings", settings.pending_check_seconds, handlers.settle_pending)],
        ),
        clock=clock,
    )
