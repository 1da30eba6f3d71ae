"""The main job end to end, black box: the three services as processes of their own, the
scenario publisher playing a small year through Kafka and checking every reported figure,
and a real Prometheus scraping the services with the shipped config and dashboards, and the
alert rules as a cluster gets them (taken out of the rendered PrometheusRule)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from unionhub_scenario import growth
from unionhub_scenario.play import Outcome, Urls, play
from unionhub_scenario.report import write_html

from tests.e2e.stack import ROOT, Processes, prometheus, services
from unionhub_contracts import TOPICS
from unionhub_runtime.auth import all_scopes, local_token
from unionhub_runtime.kafka import ensure_topics
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

SEED, SCALE = 7, 0.03
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)")
SCOPED = re.compile(r'\b(job|instance)=~"\([^"]*\)",?\s*')
OUR_METRICS = re.compile(r"^(up|unionhub_\w+|faststream_\w+|membership_\w+|evaluation_\w+|feedback_\w+)$")
# What ships to a cluster (generated from deploy/prometheus/alerts.yml by deploy/prometheus/rules.py).
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "monitoring" / "prometheusrule.yaml"


@dataclass
class Played:
    outcome: Outcome
    stack: Processes
    prometheus: str
    prefix: str
    bootstrap: str


@pytest.fixture(scope="module")
def played(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    workdir = tmp_path_factory.mktemp("e2e")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"e{uuid.uuid4().hex[:10]}.")
    asyncio.run(ensure_topics(kafka, TOPICS))
    with services(kafka.bootstrap_servers, kafka.topic_prefix, workdir) as stack:
        targets = {name: url.removeprefix("http://") for name, url in stack.urls.items()}
        with prometheus_with_shipped_rules(targets, workdir) as prometheus_url:
            services_ = ["membership", "evaluation", "feedback"]
            token = local_token(os.environ["UNIONHUB_AUTH_HS256_SECRET"], services_, all_scopes(services_))
            urls = Urls(
                kafka.bootstrap_servers,
                stack.urls["membership"],
                stack.urls["evaluation"],
                stack.urls["feedback"],
                kafka.topic_prefix,
                token,
            )
            outcome = asyncio.run(play(urls, seed=SEED, scale=SCALE))
            yield Played(outcome, stack, prometheus_url, kafka.topic_prefix, kafka.bootstrap_servers)


def test_a_small_year_played_through_kafka_reports_exactly_what_was_published(played: Played, tmp_path: Path) -> None:
    outcome = played.outcome
    failed = [c for c in outcome.checks if not c[1]]
    assert not failed, "\n".join(f"{w}: {d}" for w, _, d in failed[:5])
    assert len(outcome.checks) > 20 and outcome.latencies
    report = tmp_path / "report.html"
    write_html(outcome, report)
    assert "Star workers" in report.read_text() and "All " in report.read_text()


# --- Prometheus: the shipped dashboards and alerts work against the running services -------


def dashboard_queries(prometheus_url: str) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) of every panel target, its variables filled in as
    Grafana would with "All" chosen (see `variable_values`), its interval as 1m."""
    found = []
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        values = variable_values(prometheus_url, board)
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((path.stem, panel["title"], interpolate(target["expr"], values)))
    return found


def variable_values(prometheus_url: str, board: dict) -> dict[str, str]:
    """Each query variable of a dashboard as Grafana sends "All" to Prometheus: the values its
    own `label_values` query finds here, regex-escaped, as one alternation. A variable that
    finds nothing fails: every panel would then be empty."""
    values = {"__rate_interval": "1m"}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"])
        assert match, f"{board['uid']}: ${variable['name']} is not a label_values query"
        selector, label = interpolate(match[1], values), match[2]
        response = httpx.get(f"{prometheus_url}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=10)
        found = response.json()["data"]
        assert found, f"{board['uid']}: ${variable['name']} ({variable['query']}) finds nothing"
        # Escaped twice: for the regex, then for the PromQL string that holds it.
        values[variable["name"]] = "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in found) + ")"
    return values


def interpolate(expr: str, values: dict[str, str]) -> str:
    """`expr` with its $variables replaced (an unknown one raises: no query goes untested)."""
    return VARIABLE.sub(lambda m: values[m[1] or m[2]], expr)


def unscoped(selector: str) -> str:
    """A selector without the job and instance matchers `variable_values` filled in."""
    return SCOPED.sub("", selector).replace("{}", "")


def shipped_rule_groups() -> list[dict]:
    """The rule groups of the PrometheusRule the Prometheus Operator would load."""
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert rule["kind"] == "PrometheusRule"
    return rule["spec"]["groups"]


@contextmanager
def prometheus_with_shipped_rules(targets: dict[str, str], workdir: Path) -> Iterator[str]:
    """A real Prometheus scraping `targets` with the shipped scrape config (compose's jobs and
    their `service` relabeling), evaluating the rules taken out of the PrometheusRule."""
    rules = workdir / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": shipped_rule_groups()}, sort_keys=False))
    with prometheus(targets, workdir, rules) as url:
        yield url


def alert_rules() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for group in shipped_rule_groups() for rule in group["rules"]]


def selectors(expr: str) -> list[str]:
    """The vector selectors (metric name and label matchers) of a query."""
    found = []
    for match in re.finditer(r"\b([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?", expr):
        name, labels = match.group(1), match.group(2) or ""
        if OUR_METRICS.match(name) and not expr[match.end() :].lstrip().startswith("("):
            found.append(name + labels)
    return found


def query(prometheus_url: str, promql: str) -> dict:
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{promql}: {body.get('error')}"
    return body["data"]


def has_data(prometheus_url: str, promql: str) -> bool:
    return bool(query(prometheus_url, promql)["result"])


def wait_for_scrapes(prometheus_url: str, timeout: float = 60) -> None:
    """Every target up and the gauges refreshed after the play (two scrapes of each at least)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        up = query(prometheus_url, "count_over_time(up[1m]) >= 3 and up == 1")["result"]
        gauges = all(
            has_data(prometheus_url, name)
            for name in ("membership_active_members", "unionhub_consumer_lag_messages", "unionhub_consumer_lag_seconds")
        )
        if len(up) == 3 and gauges:
            return
        time.sleep(1)
    raise AssertionError(f"Prometheus did not scrape all three services: {query(prometheus_url, 'up')}")


def test_every_dashboard_query_and_alert_works_against_a_real_prometheus(played: Played) -> None:
    wait_for_scrapes(played.prometheus)
    queries = dashboard_queries(played.prometheus)
    assert len(queries) >= 30 and {d for d, _, _ in queries} == {"overview", "membership", "evaluation", "feedback"}
    exposed = exposed_metric_names(played.stack)
    silent, unknown, exercised_count = [], [], 0
    for dashboard, title, expr in queries:
        names = [s.split("{")[0] for s in selectors(expr)]
        unknown += [f"{dashboard} / {title}: {n}" for n in names if n not in exposed]
        # Exercised: its metrics have data on some job; then they must have some on the chosen ones.
        exercised = all(has_data(played.prometheus, unscoped(s)) for s in selectors(expr))
        exercised_count += exercised
        if exercised and not has_data(played.prometheus, expr):
            silent.append(f"{dashboard} / {title}: {expr}")
    assert not unknown, "panels naming metrics no service exposes:\n" + "\n".join(unknown)
    assert not silent, "panels whose metrics exist but that show nothing:\n" + "\n".join(silent)
    print(f"\n{len(queries)} panel queries parsed; {exercised_count} exercised by the play, all with data")
    # The scenario exercises the heart of every dashboard: those panels must show data.
    for heart in (
        ("membership", "Active members"),
        ("overview", "Consumer lag (messages)"),
        ("overview", "Consumer lag (time)"),
        ("evaluation", "Ratings received (campaign progress)"),
        ("feedback", "Satisfaction (average of 1-5)"),
    ):
        exprs = [e for d, t, e in queries if (d, t) == heart]
        assert exprs and all(has_data(played.prometheus, e) for e in exprs), heart

    rules = alert_rules()
    assert {name for name, _ in rules} >= {
        "UnionServiceDown",
        "ConsumerLagGrowing",
        "DeadLettersReceived",
        "OutboxStuck",
        "OverdueOpinionsRising",
    }
    for _, expr in rules:
        query(played.prometheus, expr)  # parses and evaluates
    loaded = httpx.get(f"{played.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert len([r for g in loaded for r in g["rules"]]) == len(rules)
    health = {(r["name"], r["query"]): (r["health"], r.get("lastError", "")) for g in loaded for r in g["rules"]}
    assert {name for name, _ in health} == {name for name, _ in rules}
    assert all(h == "ok" for h, _ in health.values()), health
    # Every service is scraped under the `service` label the rules select on, so no
    # UnionServiceDown rule (an instance down; per service, no instance answering in a namespace,
    # or, where kube-state-metrics is blind, no target anywhere) has a result. (No
    # kube-state-metrics here: UnionDeploymentNotReported may, and is not asked.)
    for service in ("membership", "evaluation", "feedback"):
        assert query(played.prometheus, f'up{{service="{service}"}} == 1')["result"], service
    down = [expr for name, expr in rules if name == "UnionServiceDown"]
    assert len(down) == 7 and not [e for e in down if query(played.prometheus, e)["result"]]
    firing = httpx.get(f"{played.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert not [a for a in firing if a["labels"]["alertname"] == "UnionServiceDown"]


def exposed_metric_names(stack: Processes) -> set[str]:
    """Every sample name the services expose (histograms as _bucket/_sum/_count), plus `up`."""
    names = {"up"}
    for url in stack.urls.values():
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
                names.update(name + suffix for suffix in suffixes)
    return names


def test_the_selector_extraction_sees_metrics_not_functions_or_labels() -> None:
    assert selectors('sum by (job, code) (rate(unionhub_commands_total{outcome="rejected"}[1m]))') == [
        'unionhub_commands_total{outcome="rejected"}'
    ]
    assert selectors("histogram_quantile(0.5, sum by (job, le) (rate(feedback_response_seconds_bucket[1m])))") == [
        "feedback_response_seconds_bucket"
    ]


def test_variables_are_filled_in_as_grafana_sends_all_and_left_out_to_see_whether_a_metric_has_data() -> None:
    values = {"job": "(membership|feedback)", "instance": "(127\\\\.0\\\\.0\\\\.1:8001)", "__rate_interval": "1m"}
    expr = interpolate(
        'rate(unionhub_commands_total{job=~"$job", instance=~"$instance", outcome="rejected"}[$__rate_interval])',
        values,
    )
    assert expr == (
        'rate(unionhub_commands_total{job=~"(membership|feedback)", instance=~"(127\\\\.0\\\\.0\\\\.1:8001)", '
        'outcome="rejected"}[1m])'
    )
    assert [unscoped(s) for s in selectors(expr)] == ['unionhub_commands_total{outcome="rejected"}']
    assert unscoped('up{job=~"(membership)", instance=~"(a:1)"}') == "up"


# --- Personal data: display names go in with member.enroll and never come out ---------------


async def read_all(bootstrap: str, topics: list[str]) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"scan-{uuid.uuid4()}",
    )
    await consumer.start()
    try:
        seen: list[ConsumerRecord[bytes, bytes]] = []
        while batch := await consumer.getmany(timeout_ms=3000, max_records=10_000):
            for records in batch.values():
                seen.extend(records)
        return seen
    finally:
        await consumer.stop()


async def all_records(bootstrap: str, topics: list[str]) -> list[bytes]:
    """Every record on `topics` as one run of bytes: key, value and header values."""
    return [
        (r.key or b"") + (r.value or b"") + b"".join(v for _, v in r.headers or ())
        for r in await read_all(bootstrap, topics)
    ]


def test_no_display_name_leaves_the_commands_topic(played: Played) -> None:
    names = growth.generate(seed=SEED, scale=SCALE).display_names
    assert len(names) > 100
    topics = [played.prefix + t.name for t in TOPICS] + [played.prefix + t.dlq for t in TOPICS]
    commands_topic = played.prefix + "membership.commands"
    records = asyncio.run(all_records(played.bootstrap, [t for t in topics if t != commands_topic]))
    assert len(records) > 1_000
    published = b"\n".join(records).decode("utf-8", "replace")
    logs = "\n".join(path.read_text() for path in played.stack.logs.values())
    metrics = "\n".join(httpx.get(f"{url}/metrics", timeout=10).text for url in played.stack.urls.values())
    sent = asyncio.run(all_records(played.bootstrap, [commands_topic]))
    assert any(names[0].encode() in r for r in sent)  # the scan finds a name where one is
    for where, text in (("topics", published), ("logs", logs), ("metrics", metrics)):
        leaked = [n for n in names if n in text]
        assert not leaked, f"{len(leaked)} display names in the {where}, e.g. {leaked[0]}"


def test_no_opinion_text_nor_reason_for_leaving_leaves_the_commands_topics(played: Played) -> None:
    # The members' words (opinions, answers, why they left) go in with commands, stay in the
    # service that keeps them and never come out: not on a topic, in a log, nor in a metric.
    commands = [played.prefix + "membership.commands", played.prefix + "feedback.commands"]
    consumer_values = asyncio.run(command_values(played.bootstrap, commands))
    private = {data[field] for data in consumer_values for field in ("text", "reason") if data.get(field)}
    assert len(private) >= 3  # opinions, answers and reasons were sent
    topics = [played.prefix + t.name for t in TOPICS if played.prefix + t.name not in commands]
    topics += [played.prefix + t.dlq for t in TOPICS]
    published = b"\n".join(asyncio.run(all_records(played.bootstrap, topics))).decode("utf-8", "replace")
    logs = "\n".join(path.read_text() for path in played.stack.logs.values())
    metrics = "\n".join(httpx.get(f"{url}/metrics", timeout=10).text for url in played.stack.urls.values())
    for where, text in (("topics", published), ("logs", logs), ("metrics", metrics)):
        leaked = [words for words in private if json.dumps(words)[1:-1] in text]
        assert not leaked, f"{len(leaked)} private texts in the {where}, e.g. {leaked[0]!r}"


async def command_values(bootstrap: str, topics: list[str]) -> list[dict[str, object]]:
    """The `data` of every command sent on `topics`."""
    return [json.loads(r.value)["data"] for r in await read_all(bootstrap, topics) if r.value]
