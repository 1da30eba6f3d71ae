"""Measurements shared by the scenarios: the raw client ceiling, the naive baseline, progress
of a service read from its /metrics, and end-to-end latencies read from an events topic."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from .infra import ServiceProcess


def consumer(bootstrap: str, *topics: str, group: str | None = None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group or f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


async def raw_ceiling(bootstrap: str, topic: str, count: int) -> float:
    """Seconds a bare aiokafka consumer takes to read `count` records and discard them."""
    client = consumer(bootstrap, topic)
    await client.start()
    try:
        seen, first = 0, 0.0
        while seen < count:
            batch = await client.getmany(timeout_ms=1000, max_records=10_000)
            if batch and not first:
                first = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        return time.perf_counter() - first
    finally:
        await client.stop()


def naive(
    mode: str, *, bootstrap: str, topic: str, contract_topic: str, count: int, database_url: str, seconds: float
) -> float:
    """Messages a second of the naive baseline (bench/naive.py, a process of its own), over
    `count` messages or `seconds`, whichever ends first."""
    outcome = json_result(
        [
            sys.executable,
            "-m",
            "bench.naive",
            mode,
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--contract-topic",
            contract_topic,
            "--count",
            str(count),
            "--database-url",
            database_url,
            "--seconds",
            str(seconds),
        ],
        what="the naive baseline",
    )
    return float(outcome["messages"]) / float(outcome["seconds"])


def json_result(command: list[str], *, what: str, timeout: float = 1800) -> dict[str, Any]:
    """Runs a measuring process of its own; its figures are the JSON of its last output line."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-2000:]}")
    figures: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return figures


def progress(
    service: ServiceProcess,
    metric: str | tuple[str, dict[str, str]],
    target: float,
    *,
    timeout: float = 900,
    poll: float = 0.05,
) -> tuple[float, float]:
    """Watches `metric` until it reaches `target`: (seconds, amount counted in them), timed from
    the last look before it first rose: group join and first fetch are not throughput. Each
    look costs the service a rendering of /metrics (milliseconds of its event loop): twenty a
    second keep that small, and the time within two looks (0.1 s, never in the service's
    favour) of the truth."""
    name, labels = (metric, {}) if isinstance(metric, str) else metric
    return watch_total(
        lambda: service.metric(name, **labels), target, timeout=timeout, poll=poll, what=f"{service.name}: {name}"
    )


def watch_total(
    read: Callable[[], float], target: float, *, timeout: float = 900, poll: float = 0.02, what: str = ""
) -> tuple[float, float]:
    started = last_idle = time.monotonic()
    base = read()
    while True:
        value = read()
        now = time.monotonic()
        if value == base:
            last_idle = now
        if value >= target:
            if value == base or now == last_idle:
                raise RuntimeError(f"{what}: the work was done before the first look; nothing was timed")
            return now - last_idle, value - base
        if now - started > timeout:
            raise TimeoutError(f"{what} at {value} of {target} after {timeout}s")
        time.sleep(poll)


class EventWatch:
    """Reads an events topic in the background; records when each correlation id answered,
    and (`stamps`) its event's `time` (when the handler ran), its record's timestamp (when the
    relay appended it, in ms) and the wall clock when it was read."""

    def __init__(self, bootstrap: str, topic: str, type_: str) -> None:
        self._client = consumer(bootstrap, topic)
        self._type = type_.encode()
        self.answered: dict[str, float] = {}
        self.stamps: dict[str, tuple[str, int, float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventWatch:
        await self._client.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._client.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._client.getmany(timeout_ms=200, max_records=10_000)
            now, wall = time.perf_counter(), time.time()
            for records in batch.values():
                for record in records:
                    if self._type in record.value:  # cheap filter before parsing
                        event = orjson.loads(record.value)
                        answering = event.get("correlationid")
                        if event["type"] == self._type.decode() and answering and answering not in self.answered:
                            self.answered[answering] = now
                            self.stamps[answering] = (event["time"], record.timestamp, wall)

    async def wait_for(self, count: int, timeout: float = 600, accept: Callable[[str], bool] = lambda _: True) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for key in self.answered if accept(key)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.answered)} of {count} answered after {timeout}s")
            await asyncio.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
