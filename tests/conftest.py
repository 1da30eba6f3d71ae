"""Real infrastructure for the tests: a Kafka broker and a PostgreSQL server.

Kafka: `KAFKA_BOOTSTRAP_SERVERS` when set; else testcontainers where a Docker engine runs;
else the project's own single-node broker (deploy/kafka/kafka.sh) on a free port.
PostgreSQL: `UNIONHUB_TEST_POSTGRES_URL` (an admin URL; each test gets its own database),
by default the server `make test` ensures (deploy/postgres/local.sh).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from unionhub_contracts import TOPICS
from unionhub_runtime.kafka import ensure_topics
from unionhub_runtime.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
# The read APIs verify tokens; every service the tests start (in process or as a process)
# shares this local secret, and `tests.support.bearer` signs with it.
os.environ.setdefault("UNIONHUB_AUTH_HS256_SECRET", secrets.token_hex(32))
DEFAULT_PG = "postgresql+asyncpg://unionhub:unionhub@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker_engine_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    if os.environ.get("KAFKA_MODE") == "cluster":  # the whole suite on three brokers
        yield from _local_cluster()
        return
    if _docker_engine_running():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    print("\n[tests] no Docker engine here: starting the project's local Kafka broker", file=sys.stderr)
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="unionhub-kafka-")
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_DATA_DIR": data_dir,
        "PYTHON": sys.executable,
    }
    script = ROOT / "deploy" / "kafka" / "kafka.sh"
    subprocess.run([str(script), "start"], env=env, check=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(script), "stop"], env=env, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)


CLUSTER = ROOT / "deploy" / "kafka" / "cluster.sh"


@contextmanager
def started_cluster() -> Iterator[dict[str, str]]:
    """Three brokers of their own (deploy/kafka/cluster.sh); yields the script's environment."""
    data_dir = tempfile.mkdtemp(prefix="unionhub-cluster-")
    env = {
        **os.environ,
        "KAFKA_PORT": str(free_ports_in_a_row(6)),
        "KAFKA_DATA_DIR": data_dir,
        "PYTHON": sys.executable,
    }
    subprocess.run([str(CLUSTER), "start"], env=env, check=True, timeout=300)
    try:
        yield env
    finally:
        subprocess.run([str(CLUSTER), "stop"], env=env, check=False, timeout=300)
        shutil.rmtree(data_dir, ignore_errors=True)


def _local_cluster() -> Iterator[str]:
    """The session's brokers as a cluster: topics get replication factor 3."""
    with started_cluster() as env:
        os.environ["KAFKA_REPLICATION_FACTOR"] = "3"
        yield subprocess.run(
            [str(CLUSTER), "bootstrap"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()


def free_ports_in_a_row(count: int) -> int:
    """A base port with the `count` ports from it free (a cluster's listeners)."""
    while True:
        base, sockets = _free_port(), []
        try:
            for port in range(base, base + count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings with a topic prefix of this test's own, all topics created."""
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    await ensure_topics(settings, TOPICS)
    return settings


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get("UNIONHUB_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        # A thread of its own: this may be reached from inside a running event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _pg_execute(url, "SELECT 1")).result()
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {make_url(url).render_as_string(hide_password=True)} "
            f"({exc!r}); run `deploy/postgres/local.sh ensure` or set UNIONHUB_TEST_POSTGRES_URL"
        )
    return url


async def _pg_execute(url: str, sql: str) -> None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes fresh, empty databases (one per service of a test): SQLite files, or new
    PostgreSQL databases, dropped at the end."""
    made: list[str] = []
    admin = request.getfixturevalue("postgres_admin_url") if request.param == "postgresql" else ""

    async def new() -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        if request.param == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / name}.db"
        await _pg_execute(admin, f'CREATE DATABASE "{name}"')
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    yield new
    if admin:
        for name in made:
            await _pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(databases: Callable[[], Awaitable[str]]) -> str:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    return await databases()
