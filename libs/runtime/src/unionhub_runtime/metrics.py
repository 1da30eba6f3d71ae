"""Prometheus metrics of the shared plumbing, on the service's own registry."""

from __future__ import annotations

import collections
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Series a gauge keeps for a label taken from free text (a district): the largest values;
# the rest are summed under OTHER, so a flood of new names cannot flood Prometheus.
MAX_LABEL_VALUES = 50
OTHER = "(other)"


def set_bounded(
    gauge: Gauge, rows: Iterable[tuple[tuple[str, ...], float]], *, free: int = 0, limit: int = MAX_LABEL_VALUES
) -> None:
    """Sets `gauge` to `rows` (label values, value), replacing what it showed before (a name
    gone from the data leaves no stale series); label number `free` keeps its `limit` values
    with the largest totals, the others summed under OTHER."""
    rows = list(rows)
    totals: dict[str, float] = collections.defaultdict(float)
    for labels, value in rows:
        totals[labels[free]] += value
    kept = {label for label, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]}
    values: dict[tuple[str, ...], float] = collections.defaultdict(float)
    for labels, value in rows:
        if labels[free] not in kept:
            labels = (*labels[:free], OTHER, *labels[free + 1 :])
        values[labels] += value
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


class RuntimeMetrics:
    """What FastStream's middleware does not measure: inbox, outbox, dead letters, retries."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.registry = registry
        self.service = service
        self.messages_processed = Counter(
            "unionhub_messages_processed_total",
            "Messages taken from a topic and settled (applied, rejected, duplicate or dead-lettered).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "unionhub_batch_processing_seconds",
            "Time to process one consumed batch, database commit included.",
            ["topic"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_size = Histogram(
            "unionhub_batch_size_messages",
            "Messages per consumed batch.",
            ["topic"],
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=registry,
        )
        self.commands = Counter(
            "unionhub_commands_total",
            "Commands and events by contract type, outcome and rejection code (a held command counts as held, then as applied or rejected once its hold is settled).",
            ["type", "outcome", "code"],
            registry=registry,
        )
        self.inbox_duplicates = Counter(
            "unionhub_inbox_duplicates_total",
            "Redelivered messages skipped because their id was already applied.",
            ["topic"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "unionhub_dead_letters_total",
            "Messages copied to a dead-letter topic.",
            ["topic", "code"],
            registry=registry,
        )
        self.events_skipped = Counter(
            "unionhub_events_skipped_total",
            "Events of a type this version does not know (a newer producer's), skipped: not applied,"
            " not dead-lettered; `type` cut short, and past a few names per topic counted as '(other)'.",
            ["topic", "type"],
            registry=registry,
        )
        self.retries = Counter(
            "unionhub_retries_total",
            "Batches retried after a failure.",
            ["topic", "reason"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "unionhub_outbox_published_total",
            "Events the outbox relay published.",
            ["topic"],
            registry=registry,
        )
        self.outbox_send_errors = Counter(
            "unionhub_outbox_send_errors_total",
            "Outbox events Kafka did not take (their key waits, with backoff; other keys go on).",
            ["topic"],
            registry=registry,
        )
        self.pruned = Counter(
            "unionhub_pruned_rows_total",
            "Inbox and dedupe rows deleted once no redelivery could bring their message back.",
            ["table"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "unionhub_outbox_backlog_events",
            "Events written to the outbox and not yet published.",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "unionhub_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when the backlog is empty).",
            registry=registry,
        )
        self.db_seconds = Histogram(
            "unionhub_database_transaction_seconds",
            "Duration of database transactions by purpose.",
            ["purpose"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "unionhub_consumer_lag_messages",
            "Messages on a topic the consumer group has not committed yet (all partitions).",
            ["topic", "group"],
            registry=registry,
        )
        self.consumer_lag_seconds = Gauge(
            "unionhub_consumer_lag_seconds",
            "Age of the oldest record on a topic the consumer group has not committed yet, by its Kafka"
            " timestamp (CreateTime: the producer's clock); 0 when the group has committed everything.",
            ["topic", "group"],
            registry=registry,
        )
        self.held_now = Gauge(
            "unionhub_held_commands",
            "Commands held now because what they depend on is not known yet, by topic and what they wait for.",
            ["topic", "waiting_for"],
            registry=registry,
        )
        self.hold_seconds = Histogram(
            "unionhub_hold_duration_seconds",
            "How long held commands waited before they were applied or rejected.",
            ["topic"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.hold_expired = Counter(
            "unionhub_hold_expired_total",
            "Held commands rejected because their prerequisite did not come within the hold period.",
            ["topic", "code"],
            registry=registry,
        )
        self.ready = Gauge(
            "unionhub_ready",
            "1 when the service reaches Kafka and its database.",
            registry=registry,
        )
