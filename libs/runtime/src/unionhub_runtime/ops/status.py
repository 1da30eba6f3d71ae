"""`unionhub status`: what an on-call engineer asks first, read from the broker and the
service's database (not from `/metrics`, which a sick service may not answer)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ..holding import count_held
from ..kafka import client_kwargs
from ..lag import measure_lag
from ..logs import describe_error
from .letters import DeadLetter, Filters
from .letters import select as select_letters
from .records import reader
from .target import Target

DEAD_LETTER_WINDOW = timedelta(hours=1)
KAFKA_SECONDS = 30  # then Kafka counts as unreachable and the database's part is printed alone


@dataclass(frozen=True)
class GroupLag:
    topic: str
    group: str
    messages: int
    seconds: float


@dataclass(frozen=True)
class Report:
    service: str
    groups: list[GroupLag]
    outbox_unpublished: int
    oldest_unpublished: datetime | None
    held: dict[str, int]  # "<consumer> waiting for <kind>" → commands
    dead_letters_last_hour: dict[str, int]  # "<topic> <code>" → dead letters
    inbox: dict[str, int]  # consumer → rows
    # What could not be read ("kafka: …", "database: …"): the rest is still reported.
    unreachable: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["oldest_unpublished"] = self.oldest_unpublished.isoformat() if self.oldest_unpublished else None
        return found

    def text(self) -> str:
        now = datetime.now(UTC)
        rows = [f"{self.service}", *(f"UNREACHABLE {what}" for what in self.unreachable), "consumer groups"]
        rows += [f"  {g.group}  {g.messages} messages behind, oldest {g.seconds:.0f} s old" for g in self.groups]
        age = (
            f", oldest from {(now - self.oldest_unpublished).total_seconds():.0f} s ago"
            if self.oldest_unpublished
            else ""
        )
        rows.append(f"outbox  {self.outbox_unpublished} events not published yet{age}")
        rows.append("held commands" + ("" if self.held else "  none"))
        rows += [f"  {what}: {n}" for what, n in sorted(self.held.items())]
        rows.append("dead letters in the last hour" + ("" if self.dead_letters_last_hour else "  none"))
        rows += [f"  {what}: {n}" for what, n in sorted(self.dead_letters_last_hour.items())]
        rows.append(
            "inbox  " + ", ".join(f"{c}: {n} rows" for c, n in sorted(self.inbox.items()))
            if self.inbox
            else "inbox  empty"
        )
        return "\n".join(rows)


async def gather(target: Target) -> Report:
    """Everything it can read: Kafka down still leaves the database's part, and the reverse."""
    unreachable = []
    groups: list[GroupLag] = []
    letters: list[DeadLetter] = []
    try:
        groups = await asyncio.wait_for(_lags(target), KAFKA_SECONDS)
        since = datetime.now(UTC) - DEAD_LETTER_WINDOW
        letters = await asyncio.wait_for(select_letters(target, Filters(since=since)), KAFKA_SECONDS)
    except (KafkaError, OSError, TimeoutError, LookupError) as exc:
        unreachable.append(f"kafka: {describe_error(exc)}")
    unpublished, oldest = 0, None
    held: dict[tuple[str, str], int] = {}
    inbox_sizes: dict[str, int] = {}
    try:
        unpublished, oldest, held, inbox_sizes = await _database(target)
    except (SQLAlchemyError, OSError) as exc:
        unreachable.append(f"database: {describe_error(exc)}")
    return Report(
        target.name,
        groups,
        unpublished,
        oldest,
        {f"{consumer} waiting for {kind}": n for (consumer, kind), n in held.items()},
        dict(Counter(f"{letter.original[0] if letter.original else letter.topic} {letter.code}" for letter in letters)),
        inbox_sizes,
        unreachable,
    )


async def _database(target: Target) -> tuple[int, datetime | None, dict[tuple[str, str], int], dict[str, int]]:
    tables, sessions = target.service.definition.tables, target.service.sessions
    async with sessions() as session:
        outbox = tables.outbox.c
        unpublished, oldest = (
            await session.execute(
                select(func.count(), func.min(outbox.created_at)).where(outbox.published_at.is_(None))
            )
        ).one()
        held = await count_held(session, tables)
        inbox = tables.inbox.c
        rows = await session.execute(select(inbox.consumer, func.count()).group_by(inbox.consumer))
        return unpublished, oldest, held, {consumer: n for consumer, n in rows}


async def _lags(target: Target) -> list[GroupLag]:
    admin = AIOKafkaAdminClient(**client_kwargs(target.kafka))
    await admin.start()
    try:
        async with reader(target.kafka) as consumer:
            found = []
            for s in target.subscriptions:
                lag = await measure_lag(admin, consumer, s.physical, s.group)
                found.append(GroupLag(s.topic, s.group, lag.messages, lag.seconds))
            return found
    finally:
        await admin.close()
