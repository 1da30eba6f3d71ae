"""What the benchmark starts: the local broker, PostgreSQL databases, service processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql+asyncpg://unionhub:unionhub@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def kafka() -> Iterator[str]:
    """`KAFKA_BOOTSTRAP_SERVERS`, or the project's single-node broker on a free port."""
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    port, data_dir = free_port(), tempfile.mkdtemp(prefix="unionhub-bench-kafka-")
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_DATA_DIR": data_dir,
        "KAFKA_HEAP": "1g",
        "PYTHON": sys.executable,
    }
    script = ROOT / "deploy" / "kafka" / "kafka.sh"
    subprocess.run([str(script), "start"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(script), "stop"], env=env, check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(data_dir, ignore_errors=True)


@asynccontextmanager
async def _connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        yield connection
    finally:
        await connection.close()


async def _pg(url: str, sql: str) -> None:
    async with _connected(url) as connection:
        await connection.execute(sql)


async def pg_value(url: str, sql: str) -> Any:
    """The first column of the first row `sql` returns on PostgreSQL database `url`."""
    async with _connected(url) as connection:
        return await connection.fetchval(sql)


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file or a new PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = os.environ.get("UNIONHUB_TEST_POSTGRES_URL", DEFAULT_PG)
    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg(admin, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(admin).set(database=name)
        if url.host in ("127.0.0.1", "localhost") and "ssl" not in url.query:
            url = url.update_query_dict({"ssl": "disable"})  # loopback: TLS only costs CPU here
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class ServiceProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float
    ready_seconds: float = 0.0
    # One client for every look: `httpx.get` builds a client, and its TLS context, each call
    # (57 ms of CPU), which polling every 20 ms took from the service measured beside it.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5))

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size in MB, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples on /metrics whose labels include `labels` (0 when absent)."""
        total = 0.0
        wanted = {f'{k}="{v}"' for k, v in labels.items()}
        for line in self.http.get(f"{self.url}/metrics").text.splitlines():
            series, _, value = line.rpartition(" ")
            metric, _, label_text = series.partition("{")
            if metric == name and wanted <= set(label_text.rstrip("}").split(",")):
                total += float(value)
        return total


def migrate(name: str, database_url: str) -> None:
    env = {**os.environ, f"{name.upper()}_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", name, "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def service(
    name: str, *, bootstrap: str, prefix: str, database_url: str, workdir: Path, **settings: str
) -> Iterator[ServiceProcess]:
    """The service as a process of its own on a migrated database; waits for /readyz."""
    port, upper = free_port(), name.upper()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        # The read APIs want a key (the bench only reads /metrics and /readyz, which are open).
        "UNIONHUB_AUTH_HS256_SECRET": os.environ.get("UNIONHUB_AUTH_HS256_SECRET") or secrets.token_hex(32),
        f"{upper}_HTTP_PORT": str(port),
        f"{upper}_DATABASE_URL": database_url,
        f"{upper}_LOG_LEVEL": "WARNING",
        **{f"{upper}_{k.upper()}": v for k, v in settings.items()},
    }
    log = workdir / f"{name}-{port}.log"
    with log.open("w") as out:
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", name, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    handle = ServiceProcess(name, f"http://127.0.0.1:{port}", process, log, started)
    try:
        deadline = started + 60
        while True:
            try:
                if handle.http.get(f"{handle.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.02)
        handle.ready_seconds = time.monotonic() - started
        yield handle
    finally:
        handle.http.close()
        process.terminate()
        process.wait(timeout=30)
