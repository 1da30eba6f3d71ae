"""Idempotent consumer: a message id is applied once per consumer, in the effect's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from .database import chunks
from .tables import RuntimeTables


async def claim(
    session: AsyncSession, tables: RuntimeTables, consumer: str, message_ids: Iterable[str]
) -> set[str]:
    """Records the ids not seen before and returns them; the others were already applied.

    A concurrent claim of the same id (a stale group member) fails the transaction on the
    primary key, and its retry then finds the id here.
    """
    wanted = list(dict.fromkeys(message_ids))
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
        now = datetime.now(UTC)
        await session.execute(
            insert(inbox),
            [{"consumer": consumer, "message_id": m, "received_at": now} for m in fresh],
        )
    return set(fresh)
