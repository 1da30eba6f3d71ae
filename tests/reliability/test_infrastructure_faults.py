"""Scenarios 3, 4, 5, 8, 11, 12 and 13 of the fault-injection suite: the Kafka broker restarted
under load (SIGTERM, then SIGKILL), instances frozen, PostgreSQL stopped or failing, one broker
of three killed, the service stopped while its broker is frozen. Each ends with the ledger's
checks: lost 0, doubled 0, order kept."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import CLUSTER, ROOT, _free_port, _pg_execute, started_cluster
from tests.reliability.harness import Fleet, Ledger, assert_exactly_once, process_state, settle
from tests.reliability.test_process_faults import MEMBERS, start_stream, until_applied
from unionhub_contracts import TOPICS
from unionhub_runtime.kafka import ensure_topics
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.reliability
SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


@dataclass
class OwnBroker:
    """A broker of this test's own, so it can be stopped and killed."""

    bootstrap: str
    env: dict[str, str]

    def script(self, action: str) -> None:
        subprocess.run([str(SCRIPT), action], env=self.env, check=True, timeout=180)

    def pid(self) -> int:
        return int((Path(self.env["KAFKA_DATA_DIR"]) / "kafka.pid").read_text())

    async def crash(self) -> None:
        """SIGKILL, then wait until the process is gone (a zombie counts as gone)."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while process_state(pid) not in (None, "Z", "X"):
            assert time.monotonic() < deadline, "the killed broker did not exit within 30 s"
            await asyncio.sleep(0.1)


@pytest.fixture
def own_broker() -> Iterator[OwnBroker]:
    data_dir = tempfile.mkdtemp(prefix="unionhub-restart-kafka-")
    port = _free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_DATA_DIR": data_dir,
        "PYTHON": sys.executable,
    }
    broker = OwnBroker(f"127.0.0.1:{port}", env)
    broker.script("start")
    try:
        yield broker
    finally:
        broker.script("stop")
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_the_broker_restarted_under_load_twice_loses_nothing(
    own_broker: OwnBroker, pg_url: str, tmp_path: Path
) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    await ensure_topics(KafkaSettings(bootstrap_servers=own_broker.bootstrap, topic_prefix=prefix), TOPICS)
    fleet = Fleet(own_broker.bootstrap, prefix, pg_url, tmp_path)
    try:
        ledger = Ledger(MEMBERS)
        fleet.start()
        stream = await start_stream(fleet, ledger, pause=0.1)
        await until_applied(fleet, 1_500)
        await asyncio.to_thread(own_broker.script, "stop")  # SIGTERM: a controlled shutdown
        await asyncio.to_thread(own_broker.script, "start")
        await until_applied(fleet, 3_500)
        await own_broker.crash()
        await asyncio.to_thread(own_broker.script, "start")
        # The producer retries through both restarts; only acknowledged sends count.
        await asyncio.wait_for(stream, timeout=300)
        await settle(fleet.database_url, ledger, timeout=240)
        outcome = await assert_exactly_once(fleet.database_url, ledger)
        (instance,) = fleet.instances
        assert instance.process.poll() is None, "the service died instead of reconnecting"
        print(
            f"\nscenario 3: {len(ledger.acked)} commands, broker stopped (SIGTERM) and killed (SIGKILL) under "
            f"load, the service reconnected by itself, "
            f"{fleet.evidence('unionhub_inbox_duplicates_total'):.0f} duplicates skipped, {outcome}"
        )
    finally:
        fleet.stop_all()


# Kubernetes' default terminationGracePeriodSeconds: SIGKILL follows SIGTERM after it.
GRACE_SECONDS = 30


async def test_a_service_stopped_while_the_broker_is_frozen_exits_within_its_grace_period(
    own_broker: OwnBroker, pg_url: str, tmp_path: Path
) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}."
    await ensure_topics(KafkaSettings(bootstrap_servers=own_broker.bootstrap, topic_prefix=prefix), TOPICS)
    fleet = Fleet(own_broker.bootstrap, prefix, pg_url, tmp_path)
    frozen = False
    try:
        ledger = Ledger(MEMBERS)
        instance = fleet.start()
        stream = await start_stream(fleet, ledger, pause=0.1)
        await until_applied(fleet, 1_500)
        os.kill(own_broker.pid(), signal.SIGSTOP)  # the broker answers nothing: no leave, commit or flush
        frozen = True
        started = time.monotonic()
        code = await asyncio.to_thread(fleet.kill, instance, signal.SIGTERM)
        took = time.monotonic() - started
        assert took < GRACE_SECONDS, f"SIGTERM took {took:.0f} s, past a {GRACE_SECONDS} s grace period"
        # uvicorn re-raises the signal it handled once it has shut down, as a process should.
        assert code == -signal.SIGTERM, f"the service exited with {code} instead of stopping on SIGTERM"
        os.kill(own_broker.pid(), signal.SIGCONT)
        frozen = False
        fleet.start()  # what the stopped instance had not committed is read again, and skipped
        await asyncio.wait_for(stream, timeout=300)
        await settle(fleet.database_url, ledger, timeout=240)
        outcome = await assert_exactly_once(fleet.database_url, ledger)
        print(
            f"\nscenario 13: {len(ledger.acked)} commands, SIGTERM while the broker was frozen: stopped in "
            f"{took:.1f} s (grace {GRACE_SECONDS} s), then a new instance finished the stream, {outcome}"
        )
    finally:
        if frozen:
            os.kill(own_broker.pid(), signal.SIGCONT)
        fleet.stop_all()


@pytest.fixture
def cluster() -> Iterator[dict[str, str]]:
    """Three brokers of this test's own (replication factor 3, min.insync.replicas 2)."""
    with started_cluster() as env:
        yield env


async def test_a_broker_of_three_killed_under_load_and_restarted_loses_nothing(
    cluster: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    def script(*args: str) -> str:
        done = subprocess.run(
            [str(CLUSTER), *args], env=cluster, check=True, capture_output=True, text=True, timeout=180
        )
        return done.stdout.strip()

    bootstrap = await asyncio.to_thread(script, "bootstrap")
    prefix = f"c{uuid.uuid4().hex[:8]}."
    await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, replication_factor=3), TOPICS)
    fleet = Fleet(bootstrap, prefix, pg_url, tmp_path)
    try:
        ledger = Ledger(MEMBERS)
        fleet.start(KAFKA_REPLICATION_FACTOR="3")
        stream = await start_stream(fleet, ledger, pause=0.1)
        await until_applied(fleet, 1_500)
        await asyncio.to_thread(script, "kill", "2")  # a crash of one broker
        await until_applied(fleet, 3_500)  # two replicas left: min.insync.replicas still met
        await asyncio.to_thread(script, "start-node", "2")
        await asyncio.wait_for(stream, timeout=300)
        await settle(fleet.database_url, ledger, timeout=240)
        outcome = await assert_exactly_once(fleet.database_url, ledger)
        (instance,) = fleet.instances
        assert instance.process.poll() is None, "the service exited instead of riding out the broker's loss"
        print(
            f"\nscenario 12: {len(ledger.acked)} commands on a three-broker cluster (replication factor 3, "
            f"min.insync.replicas 2), one broker SIGKILLed under load and restarted, "
            f"{fleet.evidence('unionhub_inbox_duplicates_total'):.0f} duplicates skipped, {outcome}"
        )
    finally:
        fleet.stop_all()


async def test_a_frozen_instance_past_its_session_timeout_does_not_double_apply(fleet: Fleet) -> None:
    ledger = Ledger(MEMBERS)
    frozen = fleet.start(MEMBERSHIP_BATCH_TIMEOUT_MS="10")
    other = fleet.start()
    stream = await start_stream(fleet, ledger, pause=0.1)
    await until_applied(fleet, 1_000)
    frozen.process.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    before = other.metric("unionhub_commands_total")
    await asyncio.sleep(15)  # past the consumer's session timeout (10 s): the group rebalances
    took_over = other.metric("unionhub_commands_total") - before
    frozen.process.send_signal(signal.SIGCONT)  # its stale batch and commit come late
    await stream
    await settle(fleet.database_url, ledger)
    outcome = await assert_exactly_once(fleet.database_url, ledger)
    print(
        f"\nscenario 4: {len(ledger.acked)} commands, one of two instances frozen "
        f"{time.monotonic() - stopped_at:.0f} s, the other took over {took_over:.0f} commands meanwhile, "
        f"{fleet.evidence('unionhub_inbox_duplicates_total'):.0f} duplicates skipped, {outcome}"
    )
    assert took_over > 0, "the group did not rebalance to the live instance"
    assert frozen.process.poll() is None  # it woke up and carried on


async def test_an_instance_frozen_for_good_inside_a_transaction_does_not_block_the_other(fleet: Fleet) -> None:
    ledger = Ledger(MEMBERS)
    # Alone at first, it stops itself right after claiming a batch's inbox rows: locks held.
    frozen = fleet.start(UNIONHUB_FAILPOINT="inbox.claimed:5:SIGSTOP")
    stream = await start_stream(fleet, ledger, pause=0.1)
    deadline = time.monotonic() + 60
    while process_state(frozen.process.pid) != "T":
        assert time.monotonic() < deadline and frozen.process.poll() is None, "it never reached its failpoint"
        await asyncio.sleep(0.1)
    stopped_at = time.monotonic()
    fleet.start()  # the group hands it every partition once the frozen one's session expires
    await stream
    await settle(fleet.database_url, ledger, timeout=180)  # never, while the frozen locks block it
    carried_on = time.monotonic() - stopped_at
    outcome = await assert_exactly_once(fleet.database_url, ledger)
    assert process_state(frozen.process.pid) == "T", "it must stay frozen to the end: no SIGCONT"
    fleet.kill(frozen)
    print(
        f"\nscenario 8: {len(ledger.acked)} commands, one of two instances frozen inside a transaction and "
        f"never resumed, the other applied everything {carried_on:.0f} s after the freeze (session timeout "
        f"10 s, idle-in-transaction timeout 20 s), {outcome}"
    )


def pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v.split(".")[0]))[-1]
    subprocess.run(["pg_ctlcluster", version, "main", action], check=True, timeout=120)


async def test_postgresql_stopped_for_30_seconds_makes_messages_wait_not_vanish(fleet: Fleet) -> None:
    ledger = Ledger(MEMBERS)
    instance = fleet.start()
    stream = await start_stream(fleet, ledger, pause=0.1)
    await until_applied(fleet, 1_500)
    await asyncio.to_thread(pg_cluster, "stop")
    red = False
    try:
        started = time.monotonic()
        while time.monotonic() - started < 30:
            async with httpx.AsyncClient() as http:
                red = red or (await http.get(f"{instance.url}/readyz", timeout=5)).status_code == 503
            await asyncio.sleep(1)
    finally:
        await asyncio.to_thread(pg_cluster, "start")
    await stream
    await settle(fleet.database_url, ledger, timeout=240)
    outcome = await assert_exactly_once(fleet.database_url, ledger)
    async with httpx.AsyncClient() as http:
        green = (await http.get(f"{instance.url}/readyz", timeout=5)).status_code == 200
    retries = instance.metric("unionhub_retries_total")
    dead = instance.metric("unionhub_dead_letters_total")
    print(
        f"\nscenario 5: {len(ledger.acked)} commands, PostgreSQL stopped 30 s under load, /readyz red then green, "
        f"{retries:.0f} retries with backoff, {dead:.0f} dead letters, {outcome}"
    )
    assert red and green and retries > 0 and dead == 0


async def test_postgresqls_own_errors_for_30_seconds_under_load_lose_and_dead_letter_nothing(fleet: Fleet) -> None:
    """Real server errors, one after another under load: a failover to a read-only server
    (25006, sessions cut: 57P01), every connection slot taken (53300), a restart caught
    while the server starts (57P03). Every command applied, none dead-lettered."""
    ledger = Ledger(MEMBERS)
    instance = fleet.start()
    database = make_url(fleet.database_url).database
    admin = make_url(fleet.database_url).set(database="postgres").render_as_string(hide_password=False)

    async def cut_sessions() -> None:
        await _pg_execute(
            admin,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
        )

    stream = await start_stream(fleet, ledger, pause=0.1)
    await until_applied(fleet, 1_000)
    started = time.monotonic()
    await _pg_execute(admin, f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    await cut_sessions()  # what a failover does: the next sessions land on a read-only server
    await asyncio.sleep(12)
    await _pg_execute(admin, f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
    await cut_sessions()
    await asyncio.sleep(2)
    await _pg_execute(admin, f'ALTER DATABASE "{database}" CONNECTION LIMIT 0')  # no slot left
    await cut_sessions()
    await asyncio.sleep(12)
    await _pg_execute(admin, f'ALTER DATABASE "{database}" CONNECTION LIMIT -1')
    await asyncio.sleep(2)
    await asyncio.to_thread(pg_cluster, "restart")  # the service reconnects while it starts up
    faulted = time.monotonic() - started
    await stream
    await settle(fleet.database_url, ledger, timeout=240)
    outcome = await assert_exactly_once(fleet.database_url, ledger)
    retries, dead = instance.metric("unionhub_retries_total"), instance.metric("unionhub_dead_letters_total")
    print(
        f"\nscenario 11: {len(ledger.acked)} commands, {faulted:.0f} s of PostgreSQL's own errors under load "
        f"(read-only failover, connection slots exhausted, restart), {retries:.0f} retries, {dead:.0f} dead "
        f"letters, {outcome}"
    )
    assert dead == 0 and retries > 0
