"""The composition root of feedback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from unionhub_contracts import asyncapi
from unionhub_contracts.catalogue import FEEDBACK_COMMANDS, FEEDBACK_EVENTS, MEMBERSHIP_EVENTS
from unionhub_contracts.membership import prerequisites
from unionhub_membership_view import view_router
from unionhub_runtime.service import Service, ServiceDefinition, Subscription
from unionhub_runtime.timers import Clock, Timer, utc_now

from .adapters.metrics import FeedbackMetrics
from .adapters.orm import membership_view, runtime_tables
from .entrypoints import api
from .entrypoints.consumers import Consumers
from .service_layer.handlers import Dependencies
from .settings import FeedbackSettings

NAME = "feedback"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: FeedbackSettings | None = None, clock: Clock = utc_now) -> Service:
    settings = settings or FeedbackSettings()
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)
    deps = Dependencies(now=clock, deadline=timedelta(days=settings.response_deadline_days))
    consumers = Consumers(deps, metrics, settings.overdue_clock, settings.events_clock_quiet_seconds)
    return Service(
        ServiceDefinition(
            name=NAME,
            settings=settings,
            tables=runtime_tables,
            events_topic=FEEDBACK_EVENTS.name,
            subscriptions=[
                Subscription(FEEDBACK_COMMANDS.name, consumers.commands, rejects=True),
                Subscription(MEMBERSHIP_EVENTS.name, membership_view.scope, rejects=False),
            ],
            asyncapi=asyncapi.document(
                NAME, receives=[FEEDBACK_COMMANDS.name, MEMBERSHIP_EVENTS.name], sends=[FEEDBACK_EVENTS.name]
            ),
            routers=[api.router, view_router(membership_view)],
            registry=registry,
            gauges=[metrics.refresh],
            timers=[Timer("mark-overdue-opinions", settings.overdue_check_seconds, consumers.mark_overdue)],
            provides=prerequisites,  # an opinion held for its member is released by membership's events
        ),
        clock=clock,
    )
