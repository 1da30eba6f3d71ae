"""The composition root of feedback."""

from __future__ import annotations

from pathlib import Path

from unionhub_contracts import asyncapi
from unionhub_contracts.catalogue import FEEDBACK_EVENTS, MEMBERSHIP_EVENTS
from unionhub_runtime.membership_view import view_router
from unionhub_runtime.scopes import per_message
from unionhub_runtime.service import Service, ServiceDefinition, Subscription

from .adapters.orm import membership_view, runtime_tables
from .entrypoints import consumers
from .settings import FeedbackSettings

NAME = "feedback"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: FeedbackSettings | None = None) -> Service:
    settings = settings or FeedbackSettings()
    return Service(
        ServiceDefinition(
            name=NAME,
            settings=settings,
            tables=runtime_tables,
            events_topic=FEEDBACK_EVENTS.name,
            subscriptions=[
                Subscription(MEMBERSHIP_EVENTS.name, per_message(consumers.handle_membership_event), rejects=False),
            ],
            asyncapi=asyncapi.document(NAME, receives=[MEMBERSHIP_EVENTS.name], sends=[FEEDBACK_EVENTS.name]),
            routers=[view_router(membership_view)],
        )
    )
