"""A service serves HTTP while it connects to Kafka (issue 18.8): `/healthz` answers at once,
`/readyz` says which check fails until the service started; a stop meanwhile is bounded and
clean; a Kafka blip shorter than 30 s leaves `/readyz` green, a longer outage turns it red."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaError

import membership.bootstrap
from membership.settings import MembershipSettings
from tests.conftest import _free_port
from tests.support import eventually, running, wait_until_ok
from unionhub_runtime import readiness
from unionhub_runtime import service as service_module
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.readiness import KAFKA_GRACE_SECONDS, Outage
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

NOT_STARTED = {"database": True, "schema": True, "kafka": False, "consumers": False}


def nowhere() -> str:
    """A Kafka bootstrap address nothing listens on."""
    return f"127.0.0.1:{_free_port()}"


def test_http_answers_while_kafka_is_unreachable_and_a_stop_meanwhile_is_bounded(tmp_path: Path) -> None:
    port, log = _free_port(), tmp_path / "membership.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": nowhere(),
        "MEMBERSHIP_HTTP_PORT": str(port),
        "MEMBERSHIP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'membership.db'}",
        "MEMBERSHIP_LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "-m", "membership", "migrate"], env=env, check=True, timeout=120)
    with log.open("w") as out:
        began = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "membership", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/healthz", log, process=process, timeout=30)
        answered = time.monotonic() - began
        # Before: nothing answered until Kafka had been retried for ~50 s.
        assert answered < 10, f"/healthz answered {answered:.1f} s after the process started"
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json() == {"status": "not ready", "checks": NOT_STARTED}
        time.sleep(1.0)  # well inside Kafka's retries
        assert process.poll() is None
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        stopped = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert code == -signal.SIGTERM, text  # uvicorn re-raises SIGTERM once shut down
    assert stopped < 10, f"took {stopped:.1f} s to stop while starting:\n{text}"
    assert "failed to start" not in text and "Traceback" not in text, text
    assert "abandoned" not in text, text  # every part stopped within its time


async def test_a_start_that_never_reaches_kafka_fails_once_and_still_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retry = functools.partial(service_module._retry_until_started, attempts=2)
    monkeypatch.setattr(service_module, "_retry_until_started", retry)
    service = membership.bootstrap.build(
        MembershipSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", kafka=KafkaSettings(bootstrap_servers=nowhere())
        )
    )
    await upgrade_async(membership.bootstrap.MIGRATIONS, service.definition.settings.database_url)
    failed = asyncio.Event()
    service.start_in_background(on_failure=failed.set)  # the CLI: ends the process, exit code 1
    await asyncio.wait_for(failed.wait(), 30)
    assert isinstance(service.start_failure, KafkaError)
    assert not (await service.ready())["kafka"]
    began = time.monotonic()
    await service.stop()
    assert time.monotonic() - began < 5


async def test_a_stop_while_starting_cancels_the_start(tmp_path: Path) -> None:
    service = membership.bootstrap.build(
        MembershipSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", kafka=KafkaSettings(bootstrap_servers=nowhere())
        )
    )
    service.start_in_background()
    await asyncio.sleep(1.0)
    began = time.monotonic()
    await service.stop()
    assert time.monotonic() - began < 5
    assert service.start_failure is None, "a cancelled start is no failure"
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name() in ("start", "outbox-relay")] == []


async def test_readyz_stays_green_through_a_kafka_blip_and_turns_red_after_30_s(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real broker answers the probes, until the test makes them fail; time is the test's."""
    monkeypatch.setattr(readiness, "KAFKA_PROBE_EVERY_SECONDS", 0.05)
    now = [1000.0]
    service = membership.bootstrap.build(
        MembershipSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", kafka=kafka)
    )
    service.kafka_outage = outage = Outage(KAFKA_GRACE_SECONDS, clock=lambda: now[0])
    observed: list[bool] = []  # the probes' answers as the outage saw them, in order
    real_observe = outage.observe

    def observe(ok: bool) -> None:
        real_observe(ok)
        observed.append(ok)

    monkeypatch.setattr(outage, "observe", observe)

    async def probes_answer(ok: bool) -> None:
        """Until the outage has seen a probe answer `ok` since now. Probes run one after
        another: once one answered so, none started before the change is still out."""
        observed.clear()
        await eventually(lambda: asyncio.sleep(0, observed[-1:] == [ok]), f"a probe answering {ok}", step=0.02)

    answers = {"broker": True}
    real_ping = service.broker.ping

    async def ping(timeout: float | None) -> bool:
        return answers["broker"] and await real_ping(timeout)

    monkeypatch.setattr(service.broker, "ping", ping)
    async with (
        running(service, membership.bootstrap.MIGRATIONS),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=service.asgi()), base_url="http://m") as http,
    ):

        async def status() -> int:
            return (await http.get("/readyz")).status_code

        assert await status() == 200
        answers["broker"] = False  # the blip begins
        await probes_answer(False)
        now[0] += KAFKA_GRACE_SECONDS - 1
        assert await status() == 200, "a blip shorter than 30 s flipped /readyz"
        answers["broker"] = True  # over after 29 s
        await probes_answer(True)
        now[0] += 5
        assert await status() == 200

        answers["broker"] = False  # an outage
        await probes_answer(False)
        now[0] += KAFKA_GRACE_SECONDS
        answer = await http.get("/readyz")
        assert answer.status_code == 503 and answer.json()["checks"]["kafka"] is False
        assert answer.json()["checks"]["database"] is True, "the read API still has its database"
        answers["broker"] = True

        async def green() -> bool:
            return await status() == 200

        await eventually(green, "ready again once Kafka answers", timeout=10)
