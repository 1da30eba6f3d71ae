"""Test helpers: build commands, produce them, collect events, run services in-process."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from unionhub_runtime.auth import all_scopes, local_token
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.service import Service


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20, step: float = 0.2) -> None:
    """Waits (bounded) until the awaitable `check` says yes; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(step)


def command(type_: str, data: dict[str, Any], *, id: str | None = None, **extra: Any) -> bytes:
    """A CloudEvent in structured JSON mode, as an outside system would send it."""
    body = {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": "tests",
        "type": type_,
        "time": "2018-03-01T09:00:00+08:00",
        "datacontenttype": "application/json",
        "data": data,
        **extra,
    }
    return orjson.dumps(body)


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    keys: list[str | None] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(values):
            key = keys[i] if keys else None
            futures.append(await producer.send(topic, value, key=key.encode() if key else None, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Collected:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int

    @property
    def event(self) -> dict[str, Any]:
        return orjson.loads(self.value)


@dataclass
class Collector:
    """Reads topics from their start in the background and keeps every record."""

    bootstrap: str
    topics: list[str]
    records: list[Collected] = field(default_factory=list)

    async def __aenter__(self) -> Collector:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=f"collector-{uuid.uuid4()}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        async for r in self._consumer:
            self.records.append(Collected(r.topic, r.key, r.value, dict(r.headers or ()), r.partition, r.offset))

    def partitions(self, topic: str) -> set[int]:
        """The partitions of `topic`, as the cluster's metadata says."""
        return set(self._consumer.partitions_for_topic(topic) or ())

    def events(self, topic: str, type_: str | None = None) -> list[dict[str, Any]]:
        found = [c.event for c in self.records if c.topic == topic]
        return [e for e in found if type_ is None or e["type"] == type_]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running(service: Service, migrations: Path) -> AsyncIterator[Service]:
    """Migrates the service's database, starts the service, and stops it afterwards."""
    await upgrade_async(migrations, service.definition.settings.database_url)
    service.requires_schema(migrations)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def bearer(*scopes: str, audience: str | list[str] | None = None) -> dict[str, str]:
    """An Authorization header with a token signed by the tests' local secret (every service's
    read scope and feedback's text scope unless `scopes` are given)."""
    services = ["membership", "evaluation", "feedback"]
    audiences = [audience] if isinstance(audience, str) else audience or services
    token = local_token(os.environ["UNIONHUB_AUTH_HS256_SECRET"], audiences, list(scopes) or all_scopes(services))
    return {"Authorization": f"Bearer {token}"}


def http_client(service: Service, headers: dict[str, str] | None = None) -> Any:
    """An HTTP client for `service`'s API, in process, with a token of every read scope."""
    import httpx

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.asgi()),
        base_url="http://service",
        headers=bearer() if headers is None else headers,
    )


def wait_until_ok(url: str, log: Path, *, process: Any = None, timeout: float = 60) -> None:
    """Waits for `url` to answer 200; fails with the log's tail on timeout or if `process`
    (a Popen) exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {url} answered:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered 200; log tail:\n{log.read_text()[-2000:]}"
        time.sleep(0.1)


def postgres_fetches(monkeypatch: Any, module: Any) -> list[str]:
    """The statements `module` sends through its `postgres_fetch` from now on (the test's
    `monkeypatch` puts the function back)."""
    sent: list[str] = []
    fetch = module.postgres_fetch

    async def counted(on: Any, statement: str, *parameters: Any) -> Any:
        sent.append(statement)
        return await fetch(on, statement, *parameters)

    monkeypatch.setattr(module, "postgres_fetch", counted)
    return sent
