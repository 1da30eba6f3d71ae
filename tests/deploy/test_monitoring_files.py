"""The shipped Prometheus config, alert rules and Grafana files are valid as files: promtool
checks and unit-tests them, and the dashboards are the ones their generator writes.
(tests/e2e runs every query against a real Prometheus scraping the services.)"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"


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


def test_the_dashboards_are_what_their_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("dashboards", GRAFANA / "dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboards"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    for name, text in module.rendered().items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, (
            f"run `python deploy/grafana/dashboards.py` ({name})"
        )


@pytest.mark.parametrize("name", ["overview", "membership", "evaluation", "feedback"])
def test_each_dashboard_uses_the_provisioned_datasource(name: str) -> None:
    import json

    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((GRAFANA / "dashboards" / f"{name}.json").read_text())
    assert dashboard["uid"] == f"unionhub-{name}" and dashboard["panels"]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
