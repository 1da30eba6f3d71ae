"""The Dockerfiles and deploy/compose.yaml, checked without a Docker engine: each image holds
one service with the contracts and the runtime and runs as a non-root user; compose wires
every service with settings names it reads, on the ports Prometheus scrapes."""

from __future__ import annotations

import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from unionhub_runtime.auth import AuthSettings
from unionhub_runtime.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTINGS = {"membership": MembershipSettings, "evaluation": EvaluationSettings, "feedback": FeedbackSettings}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = dockerfile.read_text().replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_image_holds_one_service_and_runs_it_as_a_non_root_user(service: str) -> None:
    build, final = stages(ROOT / "services" / service / "Dockerfile")
    copied = {rest.split()[0] for keyword, rest in build if keyword == "COPY"}
    assert copied == {"constraints.txt", "contracts/", "libs/runtime/", f"services/{service}/"}
    (install,) = [rest for keyword, rest in build if keyword == "RUN" and "pip install" in rest]
    assert shlex.split(install)[-3:] == ["./contracts", "./libs/runtime", f"./services/{service}"]
    assert "-c constraints.txt" in install  # the versions the tests ran with
    assert [rest for keyword, rest in final if keyword == "COPY"] == ["--from=build /opt/venv /opt/venv"]
    (user,) = [rest for keyword, rest in final if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    port = SETTINGS[service]().http_port
    prefix = SETTINGS[service].model_config["env_prefix"]
    assert f"{prefix}HTTP_PORT={port}" in env and f"{prefix}HTTP_HOST=0.0.0.0" in env
    assert ("EXPOSE", str(port)) in final
    assert ("ENTRYPOINT", f'["python", "-m", "{service}"]') in final
    assert any(keyword == "HEALTHCHECK" and f":{port}/healthz" in rest for keyword, rest in final)
    others = set(SETTINGS) - {service}
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert not [o for o in others if f"services/{o}" in text]


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_installed_package_migrates_outside_the_source_tree(service: str, tmp_path: Path) -> None:
    """What the image's `pip install` puts in site-packages is enough to migrate a database."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), "./contracts", "./libs/runtime", f"./services/{service}"],
                   cwd=ROOT, check=True, timeout=300)
    database = tmp_path / "service.db"
    prefix = SETTINGS[service].model_config["env_prefix"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), f"{prefix}DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    where = subprocess.run([sys.executable, "-c", f"import {service}; print({service}.__file__)"], env=env,
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(target))
    subprocess.run([sys.executable, "-m", service, "migrate"], env=env, check=True, cwd=tmp_path, timeout=120,
                   capture_output=True)
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    assert {"inbox", "outbox", "alembic_version"} <= tables and "traceparent" in columns


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def scrape_targets() -> dict[str, str]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_compose_wires_each_service_with_names_its_settings_read(service: str) -> None:
    spec = compose()["services"][service]
    settings = SETTINGS[service]
    prefix = settings.model_config["env_prefix"]
    for name in spec["environment"]:
        if name.startswith("KAFKA_"):
            assert name.removeprefix("KAFKA_").lower() in KafkaSettings.model_fields, name
        elif name.startswith("UNIONHUB_AUTH_"):  # the read APIs check tokens in compose too
            assert name.removeprefix("UNIONHUB_AUTH_").lower() in AuthSettings.model_fields, name
        else:
            assert name.startswith(prefix) and name.removeprefix(prefix).lower() in settings.model_fields, name
    port = spec["environment"][f"{prefix}HTTP_PORT"]
    assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert scrape_targets()[service] == f"{service}:{port}"
    assert spec["build"]["dockerfile"] == f"services/{service}/Dockerfile"
    assert (DEPLOY / spec["build"]["context"] / spec["build"]["dockerfile"]).exists()
    assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    database = spec["environment"][f"{prefix}DATABASE_URL"]
    assert database.startswith("postgresql+asyncpg://") and database.endswith(f"/{service}")


def test_compose_has_the_whole_stack_with_local_ports_and_existing_mounts() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "postgres", "topics", "membership", "evaluation", "feedback",
                             "prometheus", "grafana"}
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name, spec in services.items():
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./grafana/dashboards:/var/lib/grafana/dashboards/unionhub" in mounts
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "unionhub.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/unionhub"
    init = (DEPLOY / "postgres" / "init" / "01-databases.sh").read_text()
    assert "for service in " + " ".join(sorted(SETTINGS, key=["membership", "evaluation", "feedback"].index)) in init


def test_compose_gives_no_password_a_default() -> None:
    # Every secret is `${NAME:?…}`: compose refuses to start without it, nothing weak by default.
    services = compose()["services"]
    secrets = [("POSTGRES_PASSWORD", services["postgres"]), ("GF_SECURITY_ADMIN_PASSWORD", services["grafana"]),
               *((f"{s.upper()}_DB_PASSWORD", services["postgres"]) for s in SETTINGS),
               *(("UNIONHUB_AUTH_HS256_SECRET", services[s]) for s in SETTINGS)]
    for name, spec in secrets:
        assert spec["environment"][name].startswith("${") and ":?" in spec["environment"][name], name
    for service in SETTINGS:
        url = services[service]["environment"][f"{service.upper()}_DATABASE_URL"]
        assert f"${{{service.upper()}_DB_PASSWORD:?" in url  # the password is not in the file
