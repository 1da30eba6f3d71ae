"""The black-box stack of the end-to-end tests: the three services as processes of their own
(each on its SQLite file), and a real Prometheus scraping them with the shipped config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import _free_port as free_port
from tests.support import wait_until_ok

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("membership", "evaluation", "feedback")


@dataclass
class Processes:
    urls: dict[str, str]  # service → base URL
    logs: dict[str, Path]


@contextmanager
def services(bootstrap: str, prefix: str, workdir: Path) -> Iterator[Processes]:
    processes, urls, logs = [], {}, {}
    for name in SERVICES:
        port, upper = free_port(), name.upper()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            f"{upper}_HTTP_PORT": str(port),
            f"{upper}_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / name}.db",
            f"{upper}_METRICS_REFRESH_SECONDS": "1",
            f"{upper}_LAG_REFRESH_SECONDS": "1",
            "FEEDBACK_OVERDUE_CLOCK": "events",
            "FEEDBACK_OVERDUE_CHECK_SECONDS": "0.5",
            f"{upper}_LOG_LEVEL": "INFO",
        }
        logs[name] = workdir / f"{name}.log"
        with logs[name].open("w") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", name, "serve", "--migrate"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        for (name, url), process in zip(urls.items(), processes, strict=True):
            wait_until_ok(f"{url}/readyz", logs[name], process=process)
        yield Processes(urls, logs)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def prometheus_config(targets: dict[str, str], rules: Path) -> dict[str, object]:
    """The shipped scrape config with the targets rewritten to this run's ports, scraped every second."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"the shipped config scrapes {sorted(jobs)}"
    for name, address in targets.items():
        jobs[name]["static_configs"] = [{"targets": [address]}]
    return config


@contextmanager
def prometheus(targets: dict[str, str], workdir: Path, rules: Path | None = None) -> Iterator[str]:
    """A real Prometheus scraping `targets` with the shipped scrape config, evaluating `rules`
    (default: deploy/prometheus/alerts.yml)."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: `apt-get install prometheus` (`make test` does it)"
    config_file = workdir / "prometheus.yml"
    rules = rules or ROOT / "deploy" / "prometheus" / "alerts.yml"
    config_file.write_text(yaml.safe_dump(prometheus_config(targets, rules)))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{url}/-/ready", log, process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
