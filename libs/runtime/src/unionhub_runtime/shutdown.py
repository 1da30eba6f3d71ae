"""Stopping a service within its grace period, whatever its peers do.

Kubernetes sends SIGKILL `terminationGracePeriodSeconds` (30 s by default) after SIGTERM.
aiokafka waits up to its request timeout (40 s) for a broker that no longer answers a
LeaveGroup, a commit or a flush, so an unbounded stop is killed half-way on a bad day.
Abandoning a part loses nothing: offsets not committed are read again (the inbox skips what
was applied) and outbox rows not marked published are sent by the next instance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

from .logs import describe_error

log = logging.getLogger(__name__)

# A part reached after the deadline still gets this long to close its sockets and files.
LAST_CHANCE_SECONDS = 1.0

Step = tuple[str, Callable[[], Awaitable[object]]]


async def cancelled(task: asyncio.Task[Any]) -> None:
    """Cancels `task` and waits until it has ended."""
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def stop_in_order(steps: Sequence[Step], seconds: float) -> list[str]:
    """Runs each step in turn, all within `seconds` (plus `LAST_CHANCE_SECONDS` for each step
    reached after the deadline); a step that overruns is cancelled, one that fails is logged,
    and the next runs either way. Returns the names of the steps abandoned or failed."""
    deadline = time.monotonic() + seconds
    unclean = []
    for name, step in steps:
        budget = max(deadline - time.monotonic(), LAST_CHANCE_SECONDS)
        try:
            await asyncio.wait_for(step(), budget)
        except TimeoutError:
            log.error("stopping %s took over %.1f s: abandoned", name, budget)
            unclean.append(name)
        except Exception as exc:
            log.error("stopping %s failed: %s", name, describe_error(exc))
            unclean.append(name)
    return unclean
