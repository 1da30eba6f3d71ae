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
DATASOURCE_UID = "prometheus"  # the provisioned datasource: the datasource variable's default
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SCOPE = 'job=~"$job", instance=~"$instance"'  # the dashboard's job and instance variables


@dataclass(frozen=True)
class Panel:
    id: int  # stable: runbooks link to it (`?viewPanel=<id>`), so never renumber, never reuse
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "bargauge"
    description: str = ""


def p(
    id: int,
    title: str,
    *queries: tuple[str, str],
    unit: str = "short",
    kind: str = "timeseries",
    description: str = "",
) -> Panel:
    return Panel(id, title, queries, unit, kind, description)


def m(metric: str, matchers: str = "") -> str:
    """The selector of `metric` within the chosen jobs and instances (and `matchers`)."""
    return f"{metric}{{{SCOPE}{', ' + matchers if matchers else ''}}}"


def quantiles(metric: str, by: str, legend: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({m(metric + '_bucket')}[{RATE}])))",
            f"p{int(q * 100)} {legend}",
        )
        for q in (0.5, 0.95, 0.99)
    )


OVERVIEW = [
    p(
        1,
        "Service up",
        (m("up"), "{{job}} {{instance}}"),
        kind="stat",
        description="1 when Prometheus scrapes the service.",
    ),
    p(
        2,
        "Ready",
        (f"min by (job) ({m('unionhub_ready')})", "{{job}}"),
        kind="stat",
        description="1 when the service reaches Kafka and its database and no consumer is stuck.",
    ),
    p(
        3,
        "Throughput",
        (f"sum by (job, topic) (rate({m('unionhub_messages_processed_total')}[{RATE}]))", "{{job}} {{topic}}"),
        unit="ops",
        description="Messages settled per second (applied, rejected, duplicate or dead-lettered).",
    ),
    p(
        4,
        "Batch processing latency",
        *quantiles("unionhub_batch_processing_seconds", "job", "{{job}}"),
        unit="s",
        description="Time to apply one consumed batch, commit included.",
    ),
    p(
        5,
        "Handler latency (FastStream)",
        *quantiles("faststream_received_processed_messages_duration_seconds", "app_name", "{{app_name}}"),
        unit="s",
    ),
    p(
        6,
        "Rejected commands",
        (
            "sum by (job, code) (rate(" + m("unionhub_commands_total", 'outcome="rejected"') + f"[{RATE}]))",
            "{{job}} {{code}}",
        ),
        unit="ops",
    ),
    p(
        7,
        "Handler exceptions and retries",
        (
            "sum by (app_name, exception_type) "
            f"(rate({m('faststream_received_processed_messages_exceptions_total')}[{RATE}]))",
            "{{app_name}} {{exception_type}}",
        ),
        (f"sum by (job, reason) (rate({m('unionhub_retries_total')}[{RATE}]))", "retries {{job}} {{reason}}"),
        unit="ops",
    ),
    p(
        8,
        "Consumer lag (messages)",
        (f"max by (topic, group) ({m('unionhub_consumer_lag_messages')})", "{{group}}"),
        description="Messages the group has not committed yet, all partitions.",
    ),
    p(
        16,
        "Consumer lag (time)",
        (f"max by (topic, group) ({m('unionhub_consumer_lag_seconds')})", "{{group}}"),
        unit="s",
        description="Age of the oldest record the group has not committed, by its Kafka timestamp (the producer's "
        "clock); 0 when all is committed. ConsumerLagGrowing fires past 2 minutes for 3.",
    ),
    p(
        9,
        "Dead letters by code (last hour)",
        (f"sum by (job, topic, code) (increase({m('unionhub_dead_letters_total')}[1h]))", "{{topic}} {{code}}"),
        description="Messages copied to <topic>.dlq, by error code: not_json, invalid_data, unknown_type, too_large "
        "are the sender's to fix; handler_error is ours.",
    ),
    p(
        17,
        "Dead letters per minute by code",
        (f"sum by (job, topic, code) (rate({m('unionhub_dead_letters_total')}[{RATE}])) * 60", "{{topic}} {{code}}"),
        description="When the dead letters came, by error code.",
    ),
    p(
        10,
        "Commands held",
        (f"max by (job, topic, waiting_for) ({m('unionhub_held_commands')})", "{{topic}} {{waiting_for}}"),
        description="Commands waiting for what they depend on (a union, a member, …) or behind such a command.",
    ),
    p(
        18,
        "Hold duration",
        *quantiles("unionhub_hold_duration_seconds", "topic", "{{topic}}"),
        unit="s",
        description="How long held commands waited before they were applied or rejected (at most UNIONHUB_HOLD_SECONDS).",
    ),
    p(
        11,
        "Holds ended (last hour)",
        (f"sum by (job, topic, code) (increase({m('unionhub_hold_expired_total')}[1h]))", "{{topic}} {{code}}"),
        description="Held commands rejected because their prerequisite did not come within UNIONHUB_HOLD_SECONDS.",
    ),
    p(12, "Outbox backlog", (f"max by (job) ({m('unionhub_outbox_backlog_events')})", "{{job}}")),
    p(
        13,
        "Oldest unpublished event",
        (f"max by (job) ({m('unionhub_outbox_oldest_unpublished_age_seconds')})", "{{job}}"),
        unit="s",
    ),
    p(
        14,
        "Duplicates skipped",
        (f"sum by (job, topic) (rate({m('unionhub_inbox_duplicates_total')}[{RATE}]))", "{{job}} {{topic}}"),
        unit="ops",
    ),
    p(
        15,
        "Database transaction p99",
        (
            "histogram_quantile(0.99, sum by (job, purpose, le) "
            f"(rate({m('unionhub_database_transaction_seconds_bucket')}[{RATE}])))",
            "{{job}} {{purpose}}",
        ),
        unit="s",
    ),
]

# The business gauges are counted in the service's database and every replica reports the same
# figures: `max` across instances (by the gauge's own labels) first, then sum over districts.
MEMBERSHIP = [
    p(1, "Active members", (f"sum(max by (district) ({m('membership_active_members')}))", "members"), kind="stat"),
    p(2, "Active members by district", (f"max by (district) ({m('membership_active_members')})", "{{district}}")),
    p(
        3,
        "Growth by district (30 days)",
        (
            # Now against 30 days ago, across instances: pods come and go (a delta per pod would
            # cover its own life only). Without 30 days of history yet: the longest-lived pod's delta.
            f"(max by (district) ({m('membership_active_members')})"
            f" - max by (district) ({m('membership_active_members')} offset 30d))"
            f" or max by (district) (delta({m('membership_active_members')}[30d]))",
            "{{district}}",
        ),
        kind="bargauge",
        description="Change of active members over the last 30 days (while Prometheus holds less history: since "
        "the oldest running instance started).",
    ),
    p(
        4,
        "Unions by level",
        (f"sum by (level) (max by (district, level) ({m('membership_unions')}))", "{{level}}"),
        kind="bargauge",
    ),
    p(
        5,
        "Workers' homes and warm stations",
        (f"sum(max by (district) ({m('membership_homes')}))", "homes"),
        (f"sum(max by (district) ({m('membership_stations')}))", "stations"),
        kind="stat",
    ),
    p(
        6,
        "Commands by type and outcome",
        (f"sum by (type, outcome) (rate({m('unionhub_commands_total')}[{RATE}]))", "{{type}} {{outcome}}"),
        unit="ops",
    ),
    p(
        7,
        "Enrolments, leavings and transfers per day",
        (
            "sum by (type) (increase("
            + m("unionhub_commands_total", 'outcome="applied", type=~"member.enroll|member.leave|member.transfer"')
            + "[1d]))",
            "{{type}}",
        ),
    ),
]

EVALUATION = [
    p(1, "Campaigns open", (f"max({m('evaluation_campaigns_open')})", "open"), kind="stat"),
    p(
        2,
        "Ratings by kind and outcome",
        (f"sum by (kind, outcome) (rate({m('evaluation_ratings_total')}[{RATE}]))", "{{kind}} {{outcome}}"),
        unit="ops",
    ),
    p(
        3,
        "Ratings received (campaign progress)",
        ("sum by (kind) (" + m("evaluation_ratings_total", 'outcome="accepted"') + ")", "{{kind}}"),
    ),
    p(
        4,
        "Ratings held for membership",
        (
            "sum(max by (topic, waiting_for) (" + m("unionhub_held_commands", 'topic="evaluation.commands"') + "))",
            "held",
        ),
    ),
    p(5, "Homes by stars", (f"max by (stars) ({m('evaluation_home_stars')})", "{{stars}} stars"), kind="bargauge"),
    p(
        6,
        "Work items ingested",
        (f"sum(rate({m('evaluation_work_items_ingested_total')}[{RATE}]))", "items/s"),
        (f"sum(rate({m('evaluation_work_items_duplicates_total')}[{RATE}]))", "duplicates/s"),
        unit="ops",
    ),
]

FEEDBACK = [
    p(
        1,
        "Opinions received by channel",
        (f"sum by (channel) (rate({m('feedback_opinions_received_total')}[{RATE}]))", "{{channel}}"),
        unit="ops",
    ),
    p(2, "Open opinions by district", (f"max by (district) ({m('feedback_open_opinions')})", "{{district}}")),
    p(3, "Overdue open opinions", (f"max by (district) ({m('feedback_overdue_open_opinions')})", "{{district}}")),
    p(4, "Opinions flagged overdue", (f"sum(increase({m('feedback_opinions_overdue_total')}[{RATE}]))", "flagged")),
    p(
        5,
        "Response time",
        *quantiles("feedback_response_seconds", "job", "response"),
        unit="s",
        description="Submission to answer, business time.",
    ),
    p(
        6,
        "Satisfaction (average of 1-5)",
        (f"sum({m('feedback_satisfaction_sum')}) / sum({m('feedback_satisfaction_count')})", "mean"),
        kind="stat",
    ),
    p(
        7,
        "Visits logged",
        (f"sum by (place) (rate({m('feedback_visits_logged_total')}[{RATE}]))", "{{place}}"),
        unit="ops",
    ),
]


@dataclass(frozen=True)
class Dashboard:
    title: str
    jobs: str  # the series whose `job` labels the job variable offers: this dashboard's services
    panels: list[Panel]


DASHBOARDS = {  # the key ends the stable uid: runbooks link to /d/unionhub-<key>/…
    "overview": Dashboard("Union services: overview", "unionhub_ready", OVERVIEW),
    "membership": Dashboard("Membership", 'unionhub_ready{job=~".*membership.*"}', MEMBERSHIP),
    "evaluation": Dashboard("Evaluation", 'unionhub_ready{job=~".*evaluation.*"}', EVALUATION),
    "feedback": Dashboard("Feedback", 'unionhub_ready{job=~".*feedback.*"}', FEEDBACK),
}


def slug(title: str) -> str:
    """Grafana's slug of a dashboard title (the URL part after the uid)."""
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def panel_url(name: str, panel_id: int) -> str:
    """The path of one panel of dashboard `name` alone on the screen, as runbooks link it."""
    return f"/d/unionhub-{name}/{slug(DASHBOARDS[name].title)}?viewPanel={panel_id}"


def _variable(name: str, label: str, query: str, all_value: str | None = None) -> dict[str, object]:
    found: dict[str, object] = {"allValue": all_value} if all_value else {}
    return found | {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,  # on every time range change: instances come and go
        "includeAll": True,
        "multi": True,
        "current": {"text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def _templating(jobs: str) -> dict[str, object]:
    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": DATASOURCE_UID},
        "options": [],
        "regex": "",
        "refresh": 1,
        "hide": 0,
    }
    return {
        "list": [
            datasource,
            _variable("job", "Job", f"label_values({jobs}, job)"),
            # "All" as a regex, not the list Grafana knew at its last refresh: a pod KEDA adds
            # mid-incident shows in every panel at once. (Jobs do not come and go like that.)
            _variable("instance", "Instance", 'label_values(unionhub_ready{job=~"$job"}, instance)', ".*"),
        ]
    }


def _panel(panel: Panel, index: int) -> dict[str, object]:
    width = 8 if panel.kind == "stat" else 12
    per_row = 24 // width
    return {
        "id": panel.id,
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


def render(name: str, dashboard: Dashboard) -> dict[str, object]:
    ids = [panel.id for panel in dashboard.panels]
    assert len(ids) == len(set(ids)), f"{name}: two panels share an id"
    return {
        "uid": f"unionhub-{name}",
        "title": dashboard.title,
        "tags": ["unionhub"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": _templating(dashboard.jobs),
        "panels": [_panel(panel, i) for i, panel in enumerate(dashboard.panels)],
    }


def rendered() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(render(name, dashboard), indent=2, ensure_ascii=False) + "\n"
        for name, dashboard in DASHBOARDS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
