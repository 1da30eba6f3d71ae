"""Idempotent consumer: a message is applied once per consumer, in the effect's transaction.

A message is identified by its `source` and `id` (CloudEvents). Rows written before the
inbox kept sources have the source '' and still stand for their id from any source, so an
upgrade never applies a message twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import and_, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from .database import chunks
from .postgres import postgres_fetch
from .reads import Read, ReadPart, ReadsTogether
from .tables import RuntimeTables

MessageKey = tuple[str, str]  # (source, id)
LEGACY_SOURCE = ""


async def claim(
    session: AsyncSession, tables: RuntimeTables, consumer: str, messages: Iterable[MessageKey]
) -> set[MessageKey]:
    """Records the (source, id) pairs not seen before and returns them; the others were
    already applied.

    On PostgreSQL one statement does it (insert, skip conflicts, return what was inserted);
    a concurrent claim of the same message by a stale group member waits for that
    transaction and then sees it as taken. On SQLite (one writer at a time) a lookup, then
    an insert.
    """
    wanted = list(dict.fromkeys(messages))
    if not wanted:
        return set()
    now = datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        inserted = await postgres_fetch(
            session, _PG_CLAIM, consumer, [s for s, _ in wanted], [i for _, i in wanted], now
        )
        return {(source, message_id) for source, message_id in inserted}
    inbox = tables.inbox.c
    seen: set[MessageKey] = set()
    legacy: set[str] = set()
    for chunk in chunks(wanted, 300):  # two parameters a message
        result = await session.execute(
            select(inbox.source, inbox.message_id).where(
                inbox.consumer == consumer,
                or_(
                    tuple_(inbox.source, inbox.message_id).in_(chunk),
                    and_(inbox.source == LEGACY_SOURCE, inbox.message_id.in_([i for _, i in chunk])),
                ),
            )
        )
        for source, message_id in result:
            if source == LEGACY_SOURCE:
                legacy.add(message_id)
            else:
                seen.add((source, message_id))
    fresh = [m for m in wanted if m not in seen and m[1] not in legacy]
    if fresh:
        await session.execute(
            insert(tables.inbox),
            [{"consumer": consumer, "source": s, "message_id": i, "received_at": now} for s, i in fresh],
        )
    return set(fresh)


def claim_together(
    reads: ReadsTogether, session: AsyncSession, tables: RuntimeTables, consumer: str, messages: Iterable[MessageKey]
) -> Read[set[MessageKey]]:
    """`claim` as one of the batch's `reads` (on PostgreSQL a data-modifying `WITH` of their
    statement, which claims whether or not the read's value is looked at). When it waits for
    another transaction claiming the same message, the statement's other reads have taken
    their snapshot before that one committed: a caller finding messages taken reads again."""
    wanted = list(dict.fromkeys(messages))
    arguments = [consumer, [s for s, _ in wanted], [i for _, i in wanted], datetime.now(UTC)]
    return reads.add(
        _CLAIM_PART,
        arguments,
        lambda columns: {(source, message_id) for source, message_id in columns[0]},
        lambda: claim(session, tables, consumer, wanted),
    )


# Parameters: the consumer, the sources, the ids, the instant received (aware: `now` is UTC).
_CLAIM = (
    "INSERT INTO inbox (consumer, source, message_id, received_at) "
    "SELECT {0}::varchar, m.source, m.message_id, {3}::timestamptz "
    "FROM unnest(CAST({1} AS varchar[]), CAST({2} AS varchar[])) AS m(source, message_id) "
    "WHERE NOT EXISTS (SELECT 1 FROM inbox l WHERE l.consumer = {0}::varchar AND l.source = '' "
    "AND l.message_id = m.message_id) "
    "ON CONFLICT DO NOTHING RETURNING source, message_id"
)
_PG_CLAIM = _CLAIM.format("$1", "$2", "$3", "$4")
_CLAIM_PART = ReadPart(("ARRAY(SELECT ROW(source, message_id) FROM {w})",), 4, "{w} AS (" + _CLAIM + ")")
