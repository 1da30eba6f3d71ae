"""Offsets of applied batches, committed to Kafka in the background.

A subscription's next batch need not wait for the broker to store the offsets of the one
before: a group coordinator takes several milliseconds per commit (Kafka 4's batches its
appends for `group.coordinator.append.linger.ms`), as long as a small batch's whole
transaction, and while it waits nothing is fetched for the partitions just read. A commit
that is late or lost only brings records back, which the inbox recognises as applied; a
commit is never of a record not yet applied (the offsets are those of a batch whose
transaction committed). Commits go one at a time, newest offsets first, coalesced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from .logs import describe_error
from .shutdown import cancelled

log = logging.getLogger(__name__)


class Committing(Protocol):
    async def commit(self, offsets: dict[TopicPartition, int]) -> Any: ...

    def assignment(self) -> set[TopicPartition]: ...


RETRY_SECONDS = 0.5
FLUSH_SECONDS = 3.0


def after(records: Iterable[Any]) -> dict[TopicPartition, int]:
    """The offset to commit per partition once `records` are applied: each one's last, plus one."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        if record.offset >= offsets.get(tp, 0):
            offsets[tp] = record.offset + 1
    return offsets


class BackgroundCommits:
    """Commits the offsets it is given, without the caller waiting: one request at a time,
    whatever came meanwhile in the next one."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._pending: dict[TopicPartition, int] = {}
        self._consumer: Committing | None = None
        self._task: asyncio.Task[None] | None = None

    def submit(self, consumer: Committing, offsets: dict[TopicPartition, int]) -> None:
        if consumer is not self._consumer:
            self._pending.clear()  # a consumer started again: the old one's offsets are its own
            self._consumer = consumer
        for tp, offset in offsets.items():
            self._pending[tp] = max(offset, self._pending.get(tp, 0))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"offsets-{self._topic}")

    async def flush(self, timeout: float = FLUSH_SECONDS) -> None:
        """Waits until what was submitted has been committed (or has failed), at most
        `timeout`: a coordinator that does not answer must not hold up a stop. Never raises."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._task is not None and not self._task.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.wait({self._task}, timeout=left)

    async def close(self) -> None:
        """Stops committing (the consumer is gone): what is left is read again by the next owner."""
        if self._task is not None:
            await cancelled(self._task)
            self._task = None
        self._pending.clear()

    async def _run(self) -> None:
        while self._pending and (consumer := self._consumer) is not None:
            # Only partitions still assigned: aiokafka refuses a whole commit for one that is
            # not (a rebalance since it was submitted), and its new owner reads from the last
            # commit anyway.
            assigned = consumer.assignment()
            offsets = {tp: offset for tp, offset in self._pending.items() if tp in assigned}
            self._pending = {}
            if not offsets:
                continue
            try:
                await consumer.commit(offsets)
            except Exception as exc:
                log.warning("commit of %s offsets failed: %s", self._topic, describe_error(exc))
                if isinstance(exc, CommitFailedError) or not getattr(exc, "retriable", False):
                    # A rebalance took the partitions (their new owner reads from the last
                    # commit, and what it reads again was applied), or a failure that trying
                    # again does not mend: the next batch's commit carries these offsets.
                    continue
                # The group coordinator moved: committed again (else a partition that goes quiet
                # would show its last batch as lag), but for what is no longer ours by then.
                for tp, offset in offsets.items():
                    self._pending.setdefault(tp, offset)
                await asyncio.sleep(RETRY_SECONDS)
