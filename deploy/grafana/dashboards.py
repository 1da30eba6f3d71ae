"""Writes the Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel list below.

The JSON files are what Grafana provisions; this module is their single source, so a panel
is one line here. `python deploy/grafana/dashboards.py` rewrites them; a test checks they are
current and runs every query against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"
SERVICES = 'job=~"membership|evaluation|feedback"'


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "bargauge"
    description: str = ""


def p(
    title: str, *queries: tuple[str, str], unit: str = "short", kind: str = "timeseries", description: str = ""
) -> Panel:
    return Panel(title, queries, unit, kind, description)


def quantiles(metric: str, by: str, legend: str, where: str = "") -> tuple[tuple[str, str], ...]:
    selector = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return tuple(
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({selector}[{RATE}])))", f"p{int(q * 100)} {legend}")
        for q in (0.5, 0.95, 0.99)
    )


OVERVIEW = [
    p(
        "Service up",
        (f"up{{{SERVICES}}}", "{{job}} {{instance}}"),
        kind="stat",
        description="1 when Prometheus scrapes the service.",
    ),
    p(
        "Ready",
        ("min by (job) (unionhub_ready)", "{{job}}"),
        kind="stat",
        description="1 when the service reaches Kafka and its database and no consumer is stuck.",
    ),
    p(
        "Throughput",
        (f"sum by (job, topic) (rate(unionhub_messages_processed_total[{RATE}]))", "{{job}} {{topic}}"),
        unit="ops",
        description="Messages settled per second (applied, rejected, duplicate or dead-lettered).",
    ),
    p(
        "Batch processing latency",
        *quantiles("unionhub_batch_processing_seconds", "job", "{{job}}"),
        unit="s",
        description="Time to apply one consumed batch, commit included.",
    ),
    p(
        "Handler latency (FastStream)",
        *quantiles("faststream_received_processed_messages_duration_seconds", "app_name", "{{app_name}}"),
        unit="s",
    ),
    p(
        "Rejected commands",
        (f'sum by (job, code) (rate(unionhub_commands_total{{outcome="rejected"}}[{RATE}]))', "{{job}} {{code}}"),
        unit="ops",
    ),
    p(
        "Handler exceptions and retries",
        (
            f"sum by (app_name, exception_type) (rate(faststream_received_processed_messages_exceptions_total[{RATE}]))",
            "{{app_name}} {{exception_type}}",
        ),
        (f"sum by (job, reason) (rate(unionhub_retries_total[{RATE}]))", "retries {{job}} {{reason}}"),
        unit="ops",
    ),
    p(
        "Consumer lag",
        ("max by (topic, group) (unionhub_consumer_lag_messages)", "{{group}}"),
        description="Messages the group has not committed yet, all partitions.",
    ),
    p(
        "Dead letters (last hour)",
        ("sum by (job, topic, code) (increase(unionhub_dead_letters_total[1h]))", "{{topic}} {{code}}"),
    ),
    p(
        "Commands held",
        ("max by (job, topic, waiting_for) (unionhub_held_commands)", "{{topic}} {{waiting_for}}"),
        description="Commands waiting for what they depend on (a union, a member, …) or behind such a command.",
    ),
    p(
        "Holds ended (last hour)",
        ("sum by (job, topic, code) (increase(unionhub_hold_expired_total[1h]))", "{{topic}} {{code}}"),
        description="Held commands rejected because their prerequisite did not come within UNIONHUB_HOLD_SECONDS.",
    ),
    p("Outbox backlog", ("max by (job) (unionhub_outbox_backlog_events)", "{{job}}")),
    p(
        "Oldest unpublished event",
        ("max by (job) (unionhub_outbox_oldest_unpublished_age_seconds)", "{{job}}"),
        unit="s",
    ),
    p(
        "Duplicates skipped",
        (f"sum by (job, topic) (rate(unionhub_inbox_duplicates_total[{RATE}]))", "{{job}} {{topic}}"),
        unit="ops",
    ),
    p(
        "Database transaction p99",
        (
            f"histogram_quantile(0.99, sum by (job, purpose, le) (rate(unionhub_database_transaction_seconds_bucket[{RATE}])))",
            "{{job}} {{purpose}}",
        ),
        unit="s",
    ),
]

MEMBERSHIP = [
    p("Active members", ("sum(membership_active_members)", "members"), kind="stat"),
    p("Active members by district", ("sum by (district) (membership_active_members)", "{{district}}")),
    p(
        "Growth by district (30 days)",
        ("sum by (district) (delta(membership_active_members[30d]))", "{{district}}"),
        kind="bargauge",
        description="Change of active members over the last 30 days.",
    ),
    p("Unions by level", ("sum by (level) (membership_unions)", "{{level}}"), kind="bargauge"),
    p(
        "Workers' homes and warm stations",
        ("sum(membership_homes)", "homes"),
        ("sum(membership_stations)", "stations"),
        kind="stat",
    ),
    p(
        "Commands by type and outcome",
        (f'sum by (type, outcome) (rate(unionhub_commands_total{{job="membership"}}[{RATE}]))', "{{type}} {{outcome}}"),
        unit="ops",
    ),
    p(
        "Enrolments, leavings and transfers per day",
        (
            'sum by (type) (increase(unionhub_commands_total{job="membership",outcome="applied",'
            'type=~"member.enroll|member.leave|member.transfer"}[1d]))',
            "{{type}}",
        ),
    ),
]

EVALUATION = [
    p("Campaigns open", ("max(evaluation_campaigns_open)", "open"), kind="stat"),
    p(
        "Ratings by kind and outcome",
        (f"sum by (kind, outcome) (rate(evaluation_ratings_total[{RATE}]))", "{{kind}} {{outcome}}"),
        unit="ops",
    ),
    p(
        "Ratings received (campaign progress)",
        ('sum by (kind) (evaluation_ratings_total{outcome="accepted"})', "{{kind}}"),
    ),
    p("Ratings held for membership", ('max(unionhub_held_commands{topic="evaluation.commands"})', "held")),
    p("Homes by stars", ("max by (stars) (evaluation_home_stars)", "{{stars}} stars"), kind="bargauge"),
    p(
        "Work items ingested",
        (f"sum(rate(evaluation_work_items_ingested_total[{RATE}]))", "items/s"),
        (f"sum(rate(evaluation_work_items_duplicates_total[{RATE}]))", "duplicates/s"),
        unit="ops",
    ),
]

FEEDBACK = [
    p(
        "Opinions received by channel",
        (f"sum by (channel) (rate(feedback_opinions_received_total[{RATE}]))", "{{channel}}"),
        unit="ops",
    ),
    p("Open opinions by district", ("max by (district) (feedback_open_opinions)", "{{district}}")),
    p("Overdue open opinions", ("max by (district) (feedback_overdue_open_opinions)", "{{district}}")),
    p("Opinions flagged overdue", (f"sum(increase(feedback_opinions_overdue_total[{RATE}]))", "flagged")),
    p(
        "Response time",
        *quantiles("feedback_response_seconds", "job", "response"),
        unit="s",
        description="Submission to answer, business time.",
    ),
    p(
        "Satisfaction (average of 1-5)",
        ("sum(feedback_satisfaction_sum) / sum(feedback_satisfaction_count)", "mean"),
        kind="stat",
    ),
    p("Visits logged", (f"sum by (place) (rate(feedback_visits_logged_total[{RATE}]))", "{{place}}"), unit="ops"),
]

DASHBOARDS = {
    "overview": ("Union services: overview", OVERVIEW),
    "membership": ("Membership", MEMBERSHIP),
    "evaluation": ("Evaluation", EVALUATION),
    "feedback": ("Feedback", FEEDBACK),
}


def _panel(panel: Panel, index: int) -> dict[str, object]:
    width = 8 if panel.kind == "stat" else 12
    per_row = 24 // width
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": (index % per_row) * width, "y": (index // per_row) * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for n, (expr, legend) in enumerate(panel.queries)
        ],
    }


def render(uid: str, title: str, panels: list[Panel]) -> dict[str, object]:
    return {
        "uid": f"unionhub-{uid}",
        "title": title,
        "tags": ["unionhub"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "panels": [_panel(panel, i) for i, panel in enumerate(panels)],
    }


def rendered() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {
        f"{uid}.json": json.dumps(render(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
