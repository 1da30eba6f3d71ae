"""Idempotent consumer: a message id is applied once per consumer, in the effect's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import DateTime, bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from .database import chunks
from .tables import RuntimeTables


async def claim(
    session: AsyncSession, tables: RuntimeTables, consumer: str, message_ids: Iterable[str]
) -> set[str]:
    """Records the ids not seen before and returns them; the others were already applied.

    On PostgreSQL one statement does it (insert, skip conflicts, return what was inserted);
    a concurrent claim of the same id by a stale group member waits for that transaction and
    then sees the id as taken. On SQLite (one writer at a time) a lookup, then an insert.
    """
    wanted = list(dict.fromkeys(message_ids))
    if not wanted:
        return set()
    now = datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        inserted = await session.execute(
            _PG_CLAIM.bindparams(consumer=consumer, ids=wanted, now=now)
        )
        return set(inserted.scalars())
    inbox = tables.inbox
    seen: set[str] = set()
    for chunk in chunks(wanted):
        result = await session.execute(
            select(inbox.c.message_id).where(
                inbox.c.consumer == consumer, inbox.c.message_id.in_(chunk)
            )
        )
        seen.update(result.scalars())
    fresh = [m for m in wanted if m not in seen]
    if fresh:
        await session.execute(
            insert(inbox),
            [{"consumer": consumer, "message_id": m, "received_at": now} for m in fresh],
        )
    return set(fresh)


_PG_CLAIM = text(
    "INSERT INTO inbox (consumer, message_id, received_at) "
    "SELECT :consumer, unnest(CAST(:ids AS varchar[])), :now "
    "ON CONFLICT DO NOTHING RETURNING message_id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
