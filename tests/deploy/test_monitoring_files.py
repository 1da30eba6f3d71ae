"""The shipped Prometheus config, alert rules and Grafana files are valid as files: promtool
checks and unit-tests them, and the dashboards are the ones their generator writes.
(tests/e2e runs every query against a real Prometheus scraping the services.)"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
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


def test_promtool_accepts_the_alert_rules() -> None:
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", "alerts.yml")


def test_every_alert_fires_in_its_promtool_unit_test() -> None:
    promtool("test", "rules", "alerts.test.yml")
    rules = {r["alert"] for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tested = {
        t["alertname"]
        for case in yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    assert tested == rules


def test_every_alert_has_a_runbook_line_that_docs_explain() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            runbook = rule["annotations"]["runbook"]
            assert f"docs/operations.md#{rule['alert'].lower()}" in runbook
            assert f"### {rule['alert']}" in operations


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
