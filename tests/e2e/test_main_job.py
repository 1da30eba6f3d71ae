"""The main job end to end, black box: the three services as processes of their own, the
scenario publisher playing a small year through Kafka and checking every reported figure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from unionhub_scenario.play import Urls, play
from unionhub_scenario.report import write_html

from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack(kafka: KafkaSettings, tmp_path: Path) -> Iterator[Urls]:
    processes, urls = [], {}
    for name in ("membership", "evaluation", "feedback"):
        port = _free_port()
        upper = name.upper()
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
               "KAFKA_TOPIC_PREFIX": kafka.topic_prefix, f"{upper}_HTTP_PORT": str(port),
               f"{upper}_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / name}.db",
               "FEEDBACK_OVERDUE_CLOCK": "events",
               "FEEDBACK_OVERDUE_CHECK_SECONDS": "0.5", f"{upper}_LOG_LEVEL": "WARNING"}
        log = (tmp_path / f"{name}.log").open("w")
        processes.append(subprocess.Popen([sys.executable, "-m", name, "serve", "--migrate"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT))
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        for name, url in urls.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / f"{name}.log").read_text()[-2000:]
                time.sleep(0.2)
        yield Urls(kafka.bootstrap_servers, urls["membership"], urls["evaluation"], urls["feedback"],
                   kafka.topic_prefix)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def test_a_small_year_played_through_kafka_reports_exactly_what_was_published(
    stack: Urls, tmp_path: Path
) -> None:
    outcome = await play(stack, seed=7, scale=0.03)
    failed = [c for c in outcome.checks if not c[1]]
    assert not failed, "\n".join(f"{w}: {d}" for w, _, d in failed[:5])
    assert len(outcome.checks) > 20 and outcome.latencies
    report = tmp_path / "report.html"
    write_html(outcome, report)
    assert "Star workers" in report.read_text() and "All " in report.read_text()
