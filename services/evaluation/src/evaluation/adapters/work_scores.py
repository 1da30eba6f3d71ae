"""Ingestion of `evaluation.work-scores`: each item counted once, aggregated per month,
post and worker, stored in a few bulk statements per batch.

This is the service's high-volume path (see bench/README.md), so the statements are
written for each database rather than through the generic Core constructs: on PostgreSQL
the new items are inserted from arrays in one statement whose RETURNING names the ones not
seen before (no separate lookup); on SQLite the known ids are looked up first and the new
rows go to the driver's executemany directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.scopes import Emit

from ..domain.post_star import month_of, scaled

Item = tuple[str, str, str, str, int]  # item_id, month, post_id, worker_id, score (thousandths)

_PG_INSERT_ITEMS = text("""
    INSERT INTO work_items (item_id, month, post_id, worker_id, score_milli)
    SELECT * FROM unnest(CAST(:item_ids AS varchar[]), CAST(:months AS varchar[]), CAST(:posts AS varchar[]),
                         CAST(:workers AS varchar[]), CAST(:scores AS integer[]))
    ON CONFLICT (item_id) DO NOTHING
    RETURNING item_id""")
_PG_ADD_TO_MONTHS = text("""
    INSERT INTO worker_months (month, post_id, worker_id, item_count, score_sum)
    SELECT * FROM unnest(CAST(:months AS varchar[]), CAST(:posts AS varchar[]), CAST(:workers AS varchar[]),
                         CAST(:counts AS integer[]), CAST(:sums AS bigint[]))
    ON CONFLICT (month, post_id, worker_id) DO UPDATE
    SET item_count = worker_months.item_count + excluded.item_count,
        score_sum = worker_months.score_sum + excluded.score_sum""")
_SQLITE_KNOWN_ITEMS = "SELECT item_id FROM work_items WHERE item_id IN (SELECT value FROM json_each(?))"
_SQLITE_INSERT_ITEMS = "INSERT INTO work_items (item_id, month, post_id, worker_id, score_milli) VALUES (?, ?, ?, ?, ?)"
_SQLITE_ADD_TO_MONTHS = """
    INSERT INTO worker_months (month, post_id, worker_id, item_count, score_sum) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (month, post_id, worker_id) DO UPDATE
    SET item_count = item_count + excluded.item_count, score_sum = score_sum + excluded.score_sum"""


def month_totals(items: Sequence[Item]) -> list[tuple[str, str, str, int, int]]:
    """(month, post, worker, items, score sum) per worker month, in a fixed order (the same
    order in every instance's transaction: no deadlock between them)."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for _, month, post_id, worker_id, score in items:
        total = totals.setdefault((month, post_id, worker_id), [0, 0])
        total[0] += 1
        total[1] += score
    return [(*key, count, score_sum) for key, (count, score_sum) in sorted(totals.items())]


class WorkScoreBatch:
    """The `BatchScope` of `evaluation.work-scores`."""

    def __init__(self, session: AsyncSession, ingested: Counter, duplicates: Counter) -> None:
        self._session = session
        self._ingested = ingested
        self._duplicates = duplicates
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._known: set[str] = set()
        self._items: list[Item] = []

    async def prefetch(self, events: Sequence[CloudEvent[Any]]) -> None:
        if self._postgres:
            return  # the insert itself tells which items are new
        # One JSON array parameter instead of thousands of bound ones.
        ids = orjson.dumps([e.data.item_id for e in events]).decode()
        connection = await self._session.connection()
        found = await connection.exec_driver_sql(_SQLITE_KNOWN_ITEMS, (ids,))
        self._known.update(row[0] for row in found)

    async def handle(self, event: CloudEvent[Any]) -> Sequence[Emit]:
        item = event.data
        if item.item_id in self._known:
            self._duplicates.inc()
            return ()
        self._known.add(item.item_id)
        self._items.append((item.item_id, month_of(item.scored_at), item.post_id, item.worker_id, scaled(item.score)))
        return ()

    async def flush(self) -> None:
        if not self._items:
            return
        items = await (self._insert_postgres() if self._postgres else self._insert_sqlite())
        self._duplicates.inc(len(self._items) - len(items))
        self._ingested.inc(len(items))

    async def _insert_postgres(self) -> list[Item]:
        columns = list(zip(*self._items, strict=True))
        inserted = await self._session.execute(
            _PG_INSERT_ITEMS,
            {
                "item_ids": columns[0],
                "months": columns[1],
                "posts": columns[2],
                "workers": columns[3],
                "scores": columns[4],
            },
        )
        new = set(inserted.scalars())
        items = [item for item in self._items if item[0] in new]
        if items:
            months, posts, workers, counts, sums = zip(*month_totals(items), strict=True)
            await self._session.execute(
                _PG_ADD_TO_MONTHS,
                {"months": months, "posts": posts, "workers": workers, "counts": counts, "sums": sums},
            )
        return items

    async def _insert_sqlite(self) -> list[Item]:
        connection = await self._session.connection()
        await connection.exec_driver_sql(_SQLITE_INSERT_ITEMS, self._items)
        await connection.exec_driver_sql(_SQLITE_ADD_TO_MONTHS, month_totals(self._items))
        return self._items
