"""Pruning the records that deduplicate redeliveries (the inbox, a service's own sets such as
evaluation's work items) once no redelivery can bring their message back: a topic keeps its
records for its retention, so rows older than that plus a margin (a setting) go. Published
outbox rows go the same way after their own retention.

Rows are deleted oldest first in chunks, each its own short transaction, so pruning a
backlog never holds a long lock; PostgreSQL finds them by a BRIN index on the time column
(nearly free to keep for rows inserted in time order), SQLite by a plain index.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .columns import UtcInstant


@dataclass(frozen=True)
class Prunable:
    table: Table
    received_at: str  # the column saying when the row's message was received (or published)
    keep_seconds: float | None = None  # None: the service's dedupe_keep_seconds


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    write_lock: AbstractAsyncContextManager[Any],
    prunable: Prunable,
    before: datetime,
    chunk: int = 10_000,
) -> int:
    """Deletes the rows of `prunable` received before `before`; returns how many."""
    total = 0
    while True:
        async with write_lock, sessions() as session, session.begin():
            deleted = await _delete_chunk(session, prunable, before, chunk)
        total += deleted
        if deleted < chunk:
            return total


async def _delete_chunk(session: AsyncSession, prunable: Prunable, before: datetime, chunk: int) -> int:
    name, column = prunable.table.name, prunable.received_at
    oldest = f"SELECT {{row}} FROM {name} WHERE {column} < :before LIMIT :chunk"  # names from the metadata
    if session.get_bind().dialect.name == "postgresql":  # = ANY(ARRAY(…)): a TID scan, not a join
        statement = text(f"DELETE FROM {name} WHERE ctid = ANY(ARRAY({oldest.format(row='ctid')}))")
    else:
        statement = text(f"DELETE FROM {name} WHERE rowid IN ({oldest.format(row='rowid')})")
    result = await session.execute(
        statement.bindparams(bindparam("before", type_=UtcInstant())), {"before": before, "chunk": chunk}
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
