"""The one Dockerfile (deploy/docker), its entrypoint and deploy/compose.yaml, checked without a
Docker engine: each service's image, rendered from the file with its build argument, holds
that service with the contracts and the shared libraries and runs it as a non-root user;
compose wires every service with settings names it reads, on the ports Prometheus scrapes."""

from __future__ import annotations

import fnmatch
import glob
import importlib.util
import os
import shlex
import sqlite3
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from unionhub_runtime.auth import AuthSettings
from unionhub_runtime.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.py"
SETTINGS = {"membership": MembershipSettings, "evaluation": EvaluationSettings, "feedback": FeedbackSettings}


def rendered(service: str) -> str:
    """The Dockerfile as `docker build --build-arg SERVICE=<service>` reads it."""
    return DOCKERFILE.read_text().replace("${SERVICE}", service).replace("$SERVICE", service)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def named(text: str, name: str) -> list[tuple[str, str]]:
    """The stage `FROM … AS <name>`."""
    (stage,) = [s for s in stages(text) if s[0][1].endswith(f" AS {name}")]
    return stage


def service_stages(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What a service's build goes through: its `build` stage and the last one (the default
    target); the topics tool's stages come before them (tests/deploy/test_topics_image.py)."""
    return named(text, "build"), stages(text)[-1]


def installed(service: str) -> list[Path]:
    """The directories the image's `pip install` installs, its globs expanded in this tree."""
    build = service_stages(rendered(service))[0]
    (install,) = [rest for keyword, rest in build if keyword == "RUN" and "pip install" in rest]
    words = shlex.split(install)
    targets = words[words.index("constraints.txt") + 1 :]
    return [Path(p) for t in targets for p in sorted(glob.glob(str(ROOT / t)))]


def distribution(directory: Path) -> dict:
    return tomllib.loads((directory / "pyproject.toml").read_text())["project"]


def test_one_dockerfile_builds_every_service() -> None:
    local = {".git", ".venv", ".run", ".cache", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis"}
    found = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in local]
        found += [Path(directory, f).relative_to(ROOT) for f in files if "Dockerfile" in f]
    assert found == [DOCKERFILE.relative_to(ROOT)]


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_image_holds_one_service_and_runs_it_as_a_non_root_user(service: str) -> None:
    build, final = service_stages(rendered(service))
    assert ("ARG", "SERVICE") in build and ("ARG", "SERVICE") in final  # an ARG is seen only in its stage
    copied = {rest.split()[0] for keyword, rest in build if keyword == "COPY"}
    assert copied == {"constraints.txt", "contracts/", "libs/", f"services/{service}/"}
    (install,) = [rest for keyword, rest in build if keyword == "RUN" and "pip install" in rest]
    assert "-c constraints.txt" in install  # the versions the tests ran with
    # Everything installed lies in what was copied, and holds every unionhub distribution
    # any of it depends on (the runtime on the domain, the views on the runtime, ...).
    targets = installed(service)
    assert ROOT / "contracts" in targets and ROOT / "services" / service in targets
    assert ROOT / "libs" / "runtime" in targets
    assert all(str(t.relative_to(ROOT)).startswith(("contracts", "libs/", f"services/{service}")) for t in targets)
    names = {canonicalize_name(distribution(t)["name"]) for t in targets}
    needed = {canonicalize_name(Requirement(d).name) for t in targets for d in distribution(t).get("dependencies", [])}
    assert {d for d in needed if d.startswith("unionhub-")} <= names
    assert [rest for keyword, rest in final if keyword == "COPY"] == [
        "--from=build /opt/venv /opt/venv",
        "deploy/docker/entrypoint.py /opt/unionhub/entrypoint.py",
    ]
    (user,) = [rest for keyword, rest in final if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert f"UNIONHUB_SERVICE={service}" in env.split()
    assert ("ENTRYPOINT", '["python", "/opt/unionhub/entrypoint.py"]') in final
    assert ("CMD", '["serve"]') in final
    assert any(
        keyword == "HEALTHCHECK" and '"/opt/unionhub/entrypoint.py", "healthz"]' in rest for keyword, rest in final
    )
    others = set(SETTINGS) - {service}
    assert not [o for o in others for _, rest in build + final if f"services/{o}" in rest]


def entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unionhub_entrypoint", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_in_a_container_the_service_listens_on_every_interface_unless_told_otherwise(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    container_environment = entrypoint().container_environment
    environment = container_environment(service, {"PATH": "/usr/bin"})
    (name,) = set(environment) - {"PATH"}
    assert environment[name] == "0.0.0.0"
    monkeypatch.setenv(name, environment[name])
    assert SETTINGS[service]().http_host == "0.0.0.0"  # the name the service reads
    told = {name: "10.1.2.3"}
    assert container_environment(service, told) == told


@pytest.fixture
def healthz_server() -> Iterator[tuple[int, list[int]]]:
    """A local HTTP server answering /healthz with the status last put in the list."""
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[-1] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], status
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_health_check_asks_the_port_the_service_reads(
    service: str, healthz_server: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, status = healthz_server
    check = entrypoint().healthz
    prefix = SETTINGS[service].model_config["env_prefix"]
    monkeypatch.setenv(f"{prefix}HTTP_PORT", str(port))
    assert check(service)
    status.append(503)
    assert not check(service)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_installed_packages_migrate_through_the_entrypoint_outside_the_source_tree(
    service: str, tmp_path: Path
) -> None:
    """What the image's `pip install` puts in site-packages, run by the image's entrypoint, is
    enough to migrate a database."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            *map(str, installed(service)),
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    database = tmp_path / "service.db"
    prefix = SETTINGS[service].model_config["env_prefix"]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(target),
        "UNIONHUB_SERVICE": service,
        f"{prefix}DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    where = subprocess.run(
        [sys.executable, "-c", f"import {service}; print({service}.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(target))
    subprocess.run(
        [sys.executable, str(ENTRYPOINT), "migrate"],
        env=env,
        check=True,
        cwd=tmp_path,
        timeout=120,
        capture_output=True,
    )
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    assert {"inbox", "outbox", "alembic_version"} <= tables and "traceparent" in columns


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative to the root) out of the build context: the
    last pattern matching it or a directory above it decides."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            candidates += [c.split("/")[-1] for c in candidates]
            pattern = pattern.removeprefix("**/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negated
    return ignored


def test_the_build_context_holds_what_the_images_copy_and_nothing_else() -> None:
    for service in SETTINGS:
        for keyword, rest in instructions(rendered(service)):
            if keyword == "COPY" and not rest.startswith("--from"):
                source = rest.split()[0].rstrip("/")
                assert not dockerignored(source), source
                assert (ROOT / source).exists(), source
        assert not dockerignored(f"services/{service}/src/{service}/settings.py")
    for left_out in (
        "tests/conftest.py",
        "scenario",
        "bench",
        "docs",
        ".venv",
        ".run/membership.db",
        "libs/runtime/build/lib",
        "libs/runtime/src/unionhub_runtime/__pycache__/x.pyc",
        "contracts/src/unionhub_contracts.egg-info/PKG-INFO",
        "deploy/compose.yaml",
    ):
        assert dockerignored(left_out), left_out


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
    assert spec["build"] == {"context": "..", "dockerfile": "deploy/docker/Dockerfile", "args": {"SERVICE": service}}
    assert (DEPLOY / spec["build"]["context"] / spec["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    database = spec["environment"][f"{prefix}DATABASE_URL"]
    assert database.startswith("postgresql+asyncpg://") and database.endswith(f"/{service}")


def test_compose_has_the_whole_stack_with_local_ports_and_existing_mounts() -> None:
    services = compose()["services"]
    assert set(services) == {
        "kafka",
        "postgres",
        "topics",
        "membership",
        "evaluation",
        "feedback",
        "prometheus",
        "grafana",
    }
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
    secrets = [
        ("POSTGRES_PASSWORD", services["postgres"]),
        ("GF_SECURITY_ADMIN_PASSWORD", services["grafana"]),
        *((f"{s.upper()}_DB_PASSWORD", services["postgres"]) for s in SETTINGS),
        *(("UNIONHUB_AUTH_HS256_SECRET", services[s]) for s in SETTINGS),
    ]
    for name, spec in secrets:
        assert spec["environment"][name].startswith("${") and ":?" in spec["environment"][name], name
    for service in SETTINGS:
        url = services[service]["environment"][f"{service.upper()}_DATABASE_URL"]
        assert f"${{{service.upper()}_DB_PASSWORD:?" in url  # the password is not in the file
