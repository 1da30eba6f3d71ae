"""The composition root of membership."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from unionhub_contracts import asyncapi
from unionhub_contracts.catalogue import MEMBERSHIP_COMMANDS, MEMBERSHIP_EVENTS
from unionhub_contracts.membership import prerequisites
from unionhub_runtime.service import Service, ServiceDefinition, Subscription
from unionhub_runtime.timers import Clock, utc_now

from .adapters.metrics import MembershipGauges
from .adapters.orm import runtime_tables
from .entrypoints import api, consumers
from .settings import MembershipSettings

NAME = "membership"


def build(settings: MembershipSettings | None = None, clock: Clock = utc_now) -> Service:
    settings = settings or MembershipSettings()
    registry = CollectorRegistry()
    gauges = MembershipGauges(registry)
    return Service(
        ServiceDefinition(
            name=NAME,
            settings=settings,
            tables=runtime_tables,
            events_topic=MEMBERSHIP_EVENTS.name,
            subscriptions=[Subscription(MEMBERSHIP_COMMANDS.name, consumers.commands(), rejects=True)],
            asyncapi=asyncapi.document(NAME, receives=[MEMBERSHIP_COMMANDS.name], sends=[MEMBERSHIP_EVENTS.name]),
            routers=[api.router],
            registry=registry,
            gauges=[gauges.refresh],
            provides=prerequisites,  # a command waiting for a union is released when it is registered
        ),
        clock=clock,  # when holds end
    )


MIGRATIONS = Path(__file__).parent / "migrations"
