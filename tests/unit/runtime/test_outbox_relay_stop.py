"""Stopping the outbox relay when the stop itself runs out of time: the service's bounded
stop (`unionhub_runtime.shutdown`) cancels a part that overruns, then closes the producer;
the relay must not keep sending on it from behind the stop's shield."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData

from unionhub_runtime.metrics import RuntimeMetrics
from unionhub_runtime.outbox import OutboxRelay
from unionhub_runtime.tables import RuntimeTables, add_runtime_tables


class StuckRelay(OutboxRelay):
    """A relay whose round never ends (a broker that does not answer)."""

    async def publish_pending(self, ceiling: int | None = None) -> int:
        await asyncio.Event().wait()
        return 0


async def test_a_stop_cancelled_by_its_caller_cancels_the_relay_too() -> None:
    tables: RuntimeTables = add_runtime_tables(MetaData())
    relay = StuckRelay(sessions=None, tables=tables, metrics=RuntimeMetrics(CollectorRegistry(), "test"))  # type: ignore[arg-type]
    producer: Any = object()
    relay.start(producer)
    await asyncio.sleep(0.05)  # its first round is under way, and stuck
    running = relay._task
    assert running is not None and not running.done()
    stopping = asyncio.create_task(relay.stop(grace_seconds=60))
    await asyncio.sleep(0.05)
    stopping.cancel()  # the service's stop budget ran out
    await asyncio.gather(stopping, return_exceptions=True)
    assert stopping.cancelled()
    assert running.cancelled(), "the relay kept running after its stop was abandoned"
