"""Ingestion of `evaluation.work-scores`: each item counted once, aggregated per month,
post and worker, stored in a few bulk statements per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.database import chunks, insert_on_conflict
from unionhub_runtime.scopes import Emit

from ..domain.post_star import month_of, scaled
from . import orm


async def add_to_worker_months(session: AsyncSession, deltas: dict[tuple[str, str, str], list[int]]) -> None:
    """Adds (items, score) deltas to the per-month aggregates, creating rows as needed."""
    statement = insert_on_conflict(session, orm.worker_months)
    statement = statement.on_conflict_do_update(
        index_elements=["month", "post_id", "worker_id"],
        set_={"item_count": orm.worker_months.c.item_count + statement.excluded.item_count,
              "score_sum": orm.worker_months.c.score_sum + statement.excluded.score_sum},
    )
    rows = [{"month": m, "post_id": p, "worker_id": w, "item_count": d[0], "score_sum": d[1]}
            for (m, p, w), d in sorted(deltas.items())]  # a fixed order: no deadlock between instances
    await session.execute(statement, rows)


class WorkScoreBatch:
    """The `BatchScope` of `evaluation.work-scores`."""

    def __init__(self, session: AsyncSession, ingested: Counter, duplicates: Counter) -> None:
        self._session = session
        self._ingested = ingested
        self._duplicates = duplicates
        self._known: set[str] = set()
        self._items: list[dict[str, Any]] = []
        self._deltas: dict[tuple[str, str, str], list[int]] = {}

    async def prefetch(self, events: Sequence[CloudEvent[Any]]) -> None:
        ids = list({e.data.item_id for e in events})
        for chunk in chunks(ids):
            found = await self._session.execute(
                select(orm.work_items.c.item_id).where(orm.work_items.c.item_id.in_(chunk)))
            self._known.update(found.scalars())

    async def handle(self, event: CloudEvent[Any]) -> Sequence[Emit]:
        item = event.data
        if item.item_id in self._known:
            self._duplicates.inc()
            return ()
        self._known.add(item.item_id)
        month, score = month_of(item.scored_at), scaled(item.score)
        self._items.append({"item_id": item.item_id, "month": month, "post_id": item.post_id,
                            "worker_id": item.worker_id, "score_milli": score})
        delta = self._deltas.setdefault((month, item.post_id, item.worker_id), [0, 0])
        delta[0] += 1
        delta[1] += score
        return ()

    async def flush(self) -> None:
        if self._items:
            await self._session.execute(insert(orm.work_items), self._items)
            await add_to_worker_months(self._session, self._deltas)
            self._ingested.inc(len(self._items))
