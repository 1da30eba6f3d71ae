"""The composition root of evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from unionhub_contracts import CloudEvent, asyncapi
from unionhub_contracts.catalogue import EVALUATION_COMMANDS, EVALUATION_EVENTS, MEMBERSHIP_EVENTS, WORK_SCORES
from unionhub_contracts.membership import prerequisites
from unionhub_membership_view import view_router
from unionhub_runtime.holding import Lanes, aggregate_lanes
from unionhub_runtime.retention import Prunable
from unionhub_runtime.service import Service, ServiceDefinition, Subscription
from unionhub_runtime.timers import Clock, utc_now

from .adapters.metrics import EvaluationMetrics
from .adapters.orm import membership_view, runtime_tables, work_items
from .adapters.work_scores import WorkScoreBatch, decode_item
from .entrypoints import api, consumers
from .service_layer.handlers import Dependencies
from .settings import EvaluationSettings

NAME = "evaluation"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: EvaluationSettings | None = None, clock: Clock = utc_now) -> Service:
    settings = settings or EvaluationSettings()
    registry = CollectorRegistry()
    metrics = EvaluationMetrics(registry)
    return Service(
        ServiceDefinition(
            name=NAME,
            settings=settings,
            tables=runtime_tables,
            events_topic=EVALUATION_EVENTS.name,
            subscriptions=[
                Subscription(
                    EVALUATION_COMMANDS.name,
                    consumers.commands(Dependencies(now=clock), metrics),
                    rejects=True,
                    lanes=command_lanes,
                ),
                Subscription(MEMBERSHIP_EVENTS.name, membership_view.scope, rejects=False),
                Subscription(
                    WORK_SCORES.name,
                    lambda s: WorkScoreBatch(s, metrics.work_items, metrics.work_duplicates),
                    rejects=True,
                    max_records=settings.work_batch_max_records,
                    bulk=True,
                    decoder=decode_item,
                ),
            ],
            asyncapi=asyncapi.document(
                NAME,
                receives=[EVALUATION_COMMANDS.name, WORK_SCORES.name, MEMBERSHIP_EVENTS.name],
                sends=[EVALUATION_EVENTS.name],
            ),
            routers=[api.router, view_router(membership_view)],
            registry=registry,
            gauges=[metrics.refresh],
            provides=prerequisites,  # a rating held for its rater is released by membership's events
            prunable=[Prunable(work_items, "received_at")],  # an item counts once while it can come again
        ),
        clock=clock,
    )


def command_lanes(event: CloudEvent[Any]) -> Lanes:
    """A held rating keeps the same rater's next rating of the home, and the campaign's close,
    from overtaking it; other raters' ratings go ahead. A close waiting behind held ratings
    keeps every later rating of the campaign behind it (they would come after the close)."""
    data = event.data
    match event.type:
        case "rating.submit":
            rater = f"rating:{data.campaign_id}/{data.home_id}/{data.rater_kind}/{data.rater_id}"
            return Lanes(
                frozenset({rater, f"close:{data.campaign_id}"}), frozenset({rater, f"campaign:{data.campaign_id}"})
            )
        case "campaign.close":
            return Lanes(
                frozenset({f"campaign:{data.campaign_id}"}),
                frozenset({f"campaign:{data.campaign_id}", f"close:{data.campaign_id}"}),
            )
    return _aggregate_lanes(event)


_aggregate_lanes = aggregate_lanes(EVALUATION_COMMANDS.name)  # campaign.open, studios, post-star months
