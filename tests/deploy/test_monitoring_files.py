"""The shipped Prometheus config, alert rules and Grafana files are valid as files: promtool
checks and unit-tests them, the dashboards and the PrometheusRule are the ones their generators
write, no query sums a gauge every replica reports alike, and the Kubernetes monitoring
component (deploy/k8s/monitoring) scrapes each service with the labels compose gives it.
(tests/e2e runs every query, and the rules taken from the PrometheusRule, against a real
Prometheus scraping the services.) No Prometheus Operator runs here: the ServiceMonitors and
the PrometheusRule are checked against the part of its CRDs they use, not applied."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry

from evaluation.adapters.metrics import EvaluationMetrics
from feedback.adapters.metrics import FeedbackMetrics
from membership.adapters.metrics import MembershipGauges
from unionhub_runtime.metrics import RuntimeMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
K8S = ROOT / "deploy" / "k8s"
SERVICES = ["membership", "evaluation", "feedback"]
DASHBOARDS = ["overview", "membership", "evaluation", "feedback"]
SCOPE = '{job=~"$job", instance=~"$instance"'  # what every selector starts with
# A metric name (not a function: no "(" after it, nor a label inside braces).
METRIC = re.compile(
    r'(?<![\w{,"])(up|unionhub_\w+|faststream_\w+|membership_\w+|evaluation_\w+|feedback_\w+)\b(?!\s*\()'
)
PANEL_LINK = re.compile(r"/d/(unionhub-[\w-]+)/([\w-]+)\?viewPanel=(\d+)")


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `apt-get install prometheus` (`make test` does it)"
    result = subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def test_promtool_accepts_the_alert_rules() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool("check", "rules", "alerts.yml")


def test_every_alert_fires_in_its_promtool_unit_test() -> None:
    promtool("test", "rules", "alerts.test.yml")
    rules = {r["alert"] for r in alert_rules()}
    tested = {
        t["alertname"]
        for case in yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    assert tested == rules


def test_every_alert_says_what_to_do_and_links_the_section_of_the_docs_that_explains_it() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    base = rules_generator().RUNBOOK_BASE_URL
    assert base.endswith("/docs/operations.md") and f"`{base}`" in operations  # the docs name the base
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert annotations["summary"] and len(annotations["description"]) > 40
        assert annotations["runbook_url"] == f"{base}#{rule['alert'].lower()}"
        assert f"\n### {rule['alert']}\n" in operations  # GitHub's anchor of that heading


def rules_generator() -> ModuleType:
    """deploy/prometheus/rules.py, loaded as a module."""
    spec = importlib.util.spec_from_file_location("unionhub_rules", PROMETHEUS / "rules.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prometheusrule_is_what_its_generator_writes_from_alerts_yml() -> None:
    generator = rules_generator()
    assert (K8S / "monitoring" / "prometheusrule.yaml").read_text() == generator.rendered(), (
        "alerts.yml changed: run `python deploy/prometheus/rules.py`"
    )
    rule = yaml.safe_load(generator.rendered())
    source = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    assert [g["name"] for g in rule["spec"]["groups"]] == [g["name"] for g in source]
    everything, written = [r for g in rule["spec"]["groups"] for r in g["rules"]], alert_rules()
    # Plus, after each service's per-namespace rule, the two that speak when it cannot.
    added = [r for s in SERVICES for r in generator.unwatched(s)]
    shipped = [r for r in everything if r not in added]
    assert [r for r in everything if r in added] == added and len(everything) == len(written) + len(added)
    assert [{**r, "expr": ""} for r in shipped] == [{**r, "expr": ""} for r in written]
    # The same rules, but absent(): per namespace on Kubernetes (prometheusrule.test.yml).
    changed = [(w["expr"], s["expr"]) for w, s in zip(written, shipped, strict=True) if w["expr"] != s["expr"]]
    assert [w for w, _ in changed] == [r["expr"] for r in written if "absent(" in r["expr"]]
    assert not [s for _, s in changed if "absent(" in s]


def test_on_kubernetes_a_service_with_no_instance_answering_alerts_in_its_own_namespace(tmp_path: Path) -> None:
    """One Prometheus watching staging and production: staging's pods must not hide that
    production has none answering (absent() would). promtool runs prometheusrule.test.yml on
    the rules taken out of the PrometheusRule."""
    rule = yaml.safe_load((K8S / "monitoring" / "prometheusrule.yaml").read_text())
    (tmp_path / "prometheusrule.rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(PROMETHEUS / "prometheusrule.test.yml", tmp_path)
    promtool("test", "rules", str(tmp_path / "prometheusrule.test.yml"))


def test_the_rules_in_the_prometheusrule_pass_promtool(tmp_path: Path) -> None:
    rule = yaml.safe_load((K8S / "monitoring" / "prometheusrule.yaml").read_text())
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shipped = len(alert_rules()) + len(SERVICES) * 2  # + each service's UnionDeploymentNotReported and fallback
    assert f"SUCCESS: {shipped} rules found" in promtool("check", "rules", str(extracted))


@pytest.mark.parametrize("service", SERVICES)
def test_on_kubernetes_a_service_warns_when_its_per_namespace_down_alert_is_blind(service: str) -> None:
    """The per-namespace form reads kube-state-metrics: without it, or with the Deployment
    renamed, it never fires. A warning says so, and absent()'s check stays at a lower severity
    for a service with no target anywhere (promtool: prometheusrule.test.yml)."""
    rule = yaml.safe_load((K8S / "monitoring" / "prometheusrule.yaml").read_text())
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("labels", {}).get("service") == service]
    deployment = f'kube_deployment_spec_replicas{{deployment="{service}-app"}}'
    (guard,) = [r for r in rules if r["alert"] == "UnionDeploymentNotReported"]
    assert guard["expr"] == f"absent({deployment})" and guard["for"] == "10m"
    assert guard["labels"] == {"severity": "warning", "service": service}
    assert guard["annotations"]["summary"] == (
        f"kube-state-metrics does not report {service}-app: UnionServiceDown cannot fire per namespace"
    )
    down = {r["labels"]["severity"]: r["expr"] for r in rules if r["alert"] == "UnionServiceDown"}
    assert down == {
        "critical": f'(max by (namespace) ({deployment}) > 0) unless on (namespace) (up{{service="{service}"}} == 1)',
        "warning": f'absent(up{{service="{service}"}}) and on () absent({deployment})',
    }
    # Each links its section of the docs, which says what to do.
    operations = (ROOT / "docs" / "operations.md").read_text()
    base = rules_generator().RUNBOOK_BASE_URL
    for r in rules:
        assert set(r["annotations"]) == {"summary", "description", "runbook_url"}
        assert len(r["annotations"]["description"]) > 40
        assert r["annotations"]["runbook_url"] == f"{base}#{r['alert'].lower()}"
        assert f"\n### {r['alert']}\n" in operations


def test_the_generator_puts_the_runbooks_under_another_base_when_asked() -> None:
    rule = yaml.safe_load(rules_generator().rendered("https://wiki.example/ops"))
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls and all(re.fullmatch(r"https://wiki\.example/ops#[a-z]+", url) for url in urls)


def test_alerts_select_services_by_the_label_both_setups_give_them_never_by_job() -> None:
    """compose names a job after its service, the Prometheus Operator after the Service object
    (or `<namespace>/<monitor>`): the alerts select on `service`, set alike in both."""
    for rule in alert_rules():
        assert not re.search(r"\bjob\b", rule["expr"]), f"{rule['alert']} selects or groups by job: {rule['expr']}"
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == SERVICES
    for job in config["scrape_configs"]:
        assert {"source_labels": ["job"], "target_label": "service"} in job["relabel_configs"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_without_a_single_answering_target_raises_union_service_down(service: str) -> None:
    absent = [r for r in alert_rules() if r["expr"] == f'absent(up{{service="{service}"}} == 1)']
    assert [(r["alert"], r["labels"]) for r in absent] == [
        ("UnionServiceDown", {"severity": "critical", "service": service})
    ]


def generator() -> ModuleType:
    """deploy/grafana/dashboards.py, loaded as a module."""
    spec = importlib.util.spec_from_file_location("dashboards", GRAFANA / "dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboards"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def dashboard(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text()))


def test_the_dashboards_are_what_their_generator_writes() -> None:
    for name, text in generator().rendered().items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, (
            f"run `python deploy/grafana/dashboards.py` ({name})"
        )


@pytest.mark.parametrize("name", DASHBOARDS)
def test_each_dashboard_picks_its_datasource_job_and_instance_defaulting_to_the_provisioned_one(name: str) -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    board = dashboard(name)
    assert board["uid"] == f"unionhub-{name}" and board["panels"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["current"]["value"] == uid
    assert variables["job"]["query"].startswith("label_values(unionhub_ready")
    assert variables["instance"]["query"] == 'label_values(unionhub_ready{job=~"$job"}, instance)'
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    assert all(v["datasource"] == chosen for v in variables.values() if v["type"] == "query")
    assert all(p["datasource"] == chosen for p in board["panels"])
    assert all(t["datasource"] == chosen for p in board["panels"] for t in p["targets"])
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_query_keeps_to_the_chosen_jobs_and_instances(name: str) -> None:
    for panel in dashboard(name)["panels"]:
        for target in panel["targets"]:
            for metric in METRIC.finditer(target["expr"]):
                assert target["expr"][metric.end() :].startswith(SCOPE), f"{panel['title']}: {target['expr']}"


def test_each_alert_section_links_to_a_panel_that_exists() -> None:
    """Runbook sections link to panels by dashboard uid and stable panel id."""
    module = generator()
    panels = {(f"unionhub-{n}", p["id"]): n for n in DASHBOARDS for p in dashboard(n)["panels"]}
    sections = re.split(r"^### ", (ROOT / "docs" / "operations.md").read_text(), flags=re.MULTILINE)
    by_alert = {section.split("\n", 1)[0].strip(): section for section in sections[1:]}
    for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            links = PANEL_LINK.findall(by_alert[rule["alert"]])
            assert links, f"### {rule['alert']} links to no panel"
            for uid, slug, panel_id in links:
                name = panels.get((uid, int(panel_id)))
                assert name, f"{rule['alert']}: no panel {panel_id} on {uid}"
                assert f"/d/{uid}/{slug}?viewPanel={panel_id}" == module.panel_url(name, int(panel_id))


# --- Gauges every replica reports alike: gathered with max, never summed ------------------

# Gauges each replica measures for itself; every other gauge of the services is read from the
# service's database (business figures, outbox, held commands) or from the broker (a group's
# lag), so every replica reports the same figure and a sum would count it once per replica.
PER_INSTANCE = {"unionhub_ready"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "topk", "bottomk"}
AGGREGATION_BEFORE = re.compile(r"\b(\w+)\s*(?:(?:by|without)\s*\([^()]*\)\s*)?$")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def shared_gauges() -> set[str]:
    """The gauges of the runtime and of each service's metrics module, but PER_INSTANCE."""
    registry = CollectorRegistry()
    RuntimeMetrics(registry, "any")
    MembershipGauges(registry)
    EvaluationMetrics(registry)
    FeedbackMetrics(registry)
    return {family.name for family in registry.collect() if family.type == "gauge"} - PER_INSTANCE


def first_aggregation(expr: str, position: int) -> str | None:
    """The aggregation operator that first gathers the series selected at `position` of `expr`."""
    expr = STRING.sub(lambda m: '"' + "_" * (len(m[0]) - 2) + '"', expr)  # parentheses in strings are text
    depth = 0
    for i in range(position - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(" and depth:
            depth -= 1
        elif expr[i] == "(":
            word = AGGREGATION_BEFORE.search(expr[:i])
            if word and word[1] in AGGREGATIONS:
                return word[1]
    return None


def summed_gauges(expr: str, gauges: set[str]) -> list[str]:
    """Each gauge of `gauges` in `expr` that is not first gathered by max, with what gathers it."""
    found = []
    for gauge in sorted(gauges):
        for match in re.finditer(rf"(?<![\w:]){gauge}(?![\w:(])", expr):
            if (operator := first_aggregation(expr, match.start())) != "max":
                found.append(f"{gauge} gathered by {operator or 'nothing'}")
    return found


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every dashboard target, alert expression and query in an annotation."""
    for name in DASHBOARDS:
        for panel in dashboard(name)["panels"]:
            for target in panel["targets"]:
                yield f"{name} / {panel['title']}", target["expr"]
    for rule in alert_rules():
        yield rule["alert"], rule["expr"]
        for text in rule["annotations"].values():
            for query in re.findall(r"`([^`]*)`", text):
                yield f"{rule['alert']} (annotation)", query


def test_the_shared_gauges_are_the_ones_read_from_the_database_or_the_broker() -> None:
    assert shared_gauges() == {
        "unionhub_outbox_backlog_events",
        "unionhub_outbox_oldest_unpublished_age_seconds",
        "unionhub_held_commands",
        "unionhub_consumer_lag_messages",
        "unionhub_consumer_lag_seconds",
        "membership_active_members",
        "membership_unions",
        "membership_homes",
        "membership_stations",
        "evaluation_campaigns_open",
        "evaluation_home_stars",
        "feedback_open_opinions",
        "feedback_overdue_open_opinions",
    }, "a new gauge: add it here if every replica reports the same figure, else to PER_INSTANCE"


def test_no_dashboard_or_alert_counts_a_shared_gauge_once_per_replica() -> None:
    gauges = shared_gauges()
    seen, wrong = set(), []
    for where, expr in queries():
        seen |= {g for g in gauges if re.search(rf"(?<![\w:]){g}(?![\w:(])", expr)}
        wrong += [f"{where}: {problem} in {expr}" for problem in summed_gauges(expr, gauges)]
    assert not wrong, "aggregate with `max by (<its labels>)` first:\n" + "\n".join(wrong)
    assert len(seen) >= 10  # the check looked at the queries that use them


def test_the_check_sees_a_sum_across_replicas_wherever_it_hides() -> None:
    gauges = {"membership_active_members", "unionhub_held_commands"}
    assert summed_gauges('sum by (district) (membership_active_members{job=~"$job"})', gauges)
    assert summed_gauges("sum(delta(membership_active_members[30d]))", gauges)
    assert summed_gauges("sum(membership_active_members) by (district)", gauges)
    assert summed_gauges('membership_active_members{job=~"(a|b)"}', gauges)  # one series per replica
    assert summed_gauges("max(membership_active_members) + sum(unionhub_held_commands)", gauges) == [
        "unionhub_held_commands gathered by sum"
    ]
    assert not summed_gauges('sum(max by (district) (membership_active_members{job=~"(a|b)"}))', gauges)
    assert not summed_gauges("max by (district) (delta(membership_active_members[30d]))", gauges)
    assert not summed_gauges("sum(membership_active_members_total)", gauges)  # another metric


# --- Kubernetes: the monitoring component (deploy/k8s/monitoring) ------------------------

# The part of the Prometheus Operator's CRDs (monitoring.coreos.com/v1, operator 0.93) these
# manifests use. The API server prunes an unknown field silently: a misspelt one fails here.
RELABELING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "targetLabel": {"type": "string"},
        "action": {"enum": ["replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep"]},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
    },
}
MONITORING_CRDS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                                "relabelings": {"type": "array", "items": RELABELING},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["alert", "expr"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "expr": {"type": "string"},
                                            "for": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"},
                                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                            "annotations": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def k8s_rules() -> ModuleType:
    """deploy/k8s/render.py (kustomize, then the project's rules across objects)."""
    spec = importlib.util.spec_from_file_location("unionhub_k8s_render_for_monitoring", K8S / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def with_monitoring(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered with the monitoring component in (in a copy, as an overlay takes it)."""
    if not (ROOT / ".venv" / "bin" / "kustomize").exists():
        pytest.fail("kustomize is missing: `make tools` installs it (go install sigs.k8s.io/kustomize/kustomize/v5)")
    copied = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copied)
    rendered = {}
    for overlay in ("staging", "production"):
        path = copied / "overlays" / overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        if "../../monitoring" not in kustomization.setdefault("components", []):
            kustomization["components"].append("../../monitoring")
        path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
        rendered[overlay] = k8s_rules().render(path.parent)
    return rendered


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_the_kubernetes_rules_name_the_deployments_the_overlays_render(with_monitoring: dict) -> None:
    """The per-namespace form reads kube-state-metrics' series of each service's Deployment by
    name: a renamed Deployment would leave its rule silent."""
    for overlay, docs in with_monitoring.items():
        (rule,) = kinds(docs, "PrometheusRule")
        exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
        named = set(re.findall(r'kube_deployment_spec_replicas\{deployment="([^"]+)"\}', exprs))
        assert named == {d["metadata"]["name"] for d in kinds(docs, "Deployment")}, overlay


def test_kube_prometheus_stack_selects_every_servicemonitor_and_prometheusrule(tmp_path: Path) -> None:
    """Its Prometheus selects them by `release: <its Helm release>` (the chart's
    serviceMonitorSelectorNilUsesHelmValues and ruleSelectorNilUsesHelmValues, both true by
    default); kube-prometheus's selects every one."""
    production = k8s_rules().render(K8S / "overlays" / "production")
    picked = kinds(production, "ServiceMonitor") + kinds(production, "PrometheusRule")
    assert len(picked) == 4
    assert {d["metadata"]["name"]: d["metadata"]["labels"].get("release") for d in picked} == {
        "membership": "kube-prometheus-stack",
        "evaluation": "kube-prometheus-stack",
        "feedback": "kube-prometheus-stack",
        "unionhub": "kube-prometheus-stack",
    }
    # Another release name: the overlay's patch docs/operations.md gives.
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(K8S / 'overlays' / 'production', tmp_path)}]\n"
        "patches:\n"
        "  - target: {group: monitoring.coreos.com}\n"
        "    patch: |-\n"
        "      - {op: replace, path: /metadata/labels/release, value: monitoring}\n"
    )
    renamed = k8s_rules().render(tmp_path)
    assert {
        d["metadata"]["labels"]["release"] for d in kinds(renamed, "ServiceMonitor") + kinds(renamed, "PrometheusRule")
    } == {"monitoring"}
    assert k8s_rules().problems(renamed) == []


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_the_monitoring_component_keeps_every_rule_and_schema(with_monitoring: dict, overlay: str) -> None:
    docs = with_monitoring[overlay]
    assert k8s_rules().problems(docs) == []
    for kind, schema in MONITORING_CRDS.items():
        assert kinds(docs, kind), kind
        for doc in kinds(docs, kind):
            jsonschema.validate(doc, schema)
    (rule,) = kinds(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((K8S / "monitoring" / "prometheusrule.yaml").read_text())["spec"]
    broken = copy.deepcopy(kinds(docs, "ServiceMonitor")[0])
    broken["spec"]["endpoints"][0]["relabelling"] = broken["spec"]["endpoints"][0].pop("relabelings")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, MONITORING_CRDS["ServiceMonitor"])


@pytest.mark.parametrize("overlay", ["staging", "production"])
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_scraped_on_kubernetes_under_the_job_and_service_compose_gives_it(
    with_monitoring: dict, overlay: str, service: str
) -> None:
    docs, rules = with_monitoring[overlay], k8s_rules()
    (deployment,) = [
        d for d in kinds(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/name"] == service
    ]
    pod = deployment["spec"]["template"]
    services = [
        s
        for s in kinds(docs, "Service")
        if rules.selects({"matchLabels": s["spec"]["selector"]}, pod["metadata"]["labels"])
    ]
    (svc,) = services
    (monitor,) = [
        m for m in kinds(docs, "ServiceMonitor") if rules.selects(m["spec"]["selector"], svc["metadata"]["labels"])
    ]
    assert monitor["metadata"]["namespace"] == svc["metadata"]["namespace"]  # no namespaceSelector: its own
    # The endpoint is the Service port that leads to the container port serving /metrics.
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    (port,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
    container_ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert port["targetPort"] in container_ports
    # job: from the Service's label named by jobLabel; service: relabeled from the same label.
    assert svc["metadata"]["labels"][monitor["spec"]["jobLabel"]] == service
    meta = "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", monitor["spec"]["jobLabel"])
    assert {"sourceLabels": [meta], "targetLabel": "service"} in endpoint["relabelings"]
    # Prometheus may discover the pods (kube-prometheus: a Role in the namespace) and reach the port.
    (binding,) = kinds(docs, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}]
    (role,) = kinds(docs, "Role")
    granted = {(group, resource) for r in role["rules"] for group in r["apiGroups"] for resource in r["resources"]}
    assert {("", "services"), ("", "pods"), ("discovery.k8s.io", "endpointslices")} <= granted
    allowed = [
        rule
        for policy in kinds(docs, "NetworkPolicy")
        if policy["spec"]["podSelector"] and rules.selects(policy["spec"]["podSelector"], pod["metadata"]["labels"])
        for rule in policy["spec"].get("ingress", [])
        if {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in rule["from"]
    ]
    assert any(p["port"] in (port["targetPort"], port["port"]) for rule in allowed for p in rule["ports"])
    # The absent() rule of UnionServiceDown takes a service with no pod for one that is down.
    (scaled,) = [
        s for s in kinds(docs, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    ]
    assert scaled["spec"]["minReplicaCount"] >= 1
