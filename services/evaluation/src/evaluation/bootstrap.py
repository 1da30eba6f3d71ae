"""The composition root of evaluation."""

from __future__ import annotations

from pathlib import Path

from unionhub_contracts import asyncapi
from unionhub_contracts.catalogue import EVALUATION_EVENTS, MEMBERSHIP_EVENTS
from unionhub_runtime.membership_view import view_router
from unionhub_runtime.scopes import per_message
from unionhub_runtime.service import Service, ServiceDefinition, Subscription

from .adapters.orm import membership_view, runtime_tables
from .entrypoints import consumers
from .settings import EvaluationSettings

NAME = "evaluation"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: EvaluationSettings | None = None) -> Service:
    settings = settings or EvaluationSettings()
    return Service(
        ServiceDefinition(
            name=NAME,
            settings=settings,
            tables=runtime_tables,
            events_topic=EVALUATION_EVENTS.name,
            subscriptions=[
                Subscription(MEMBERSHIP_EVENTS.name, per_message(consumers.handle_membership_event), rejects=False),
            ],
            asyncapi=asyncapi.document(NAME, receives=[MEMBERSHIP_EVENTS.name], sends=[EVALUATION_EVENTS.name]),
            routers=[view_router(membership_view)],
        )
    )
