"""Ingestion of `evaluation.work-scores`: each item counted once, aggregated per month,
post and worker, stored in a few bulk statements per batch.

This is the service's high-volume path (see bench/README.md), so the statements are
written for each database rather than through the generic Core constructs, each taking a
whole batch in one parameter: on PostgreSQL the new ids are inserted from an array in one
statement whose RETURNING names the ones not seen before (no separate lookup); on SQLite
the known ids are looked up first and the new ones inserted from one JSON array.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts.fast import WorkScoredData

from ..domain.post_star import month_of, scaled

Item = tuple[str, str, str, str, int]  # item_id, month, post_id, worker_id, score (thousandths)

_PG_INSERT_ITEMS = """
    INSERT INTO work_items (item_id) SELECT unnest(CAST($1 AS varchar[]))
    ON CONFLICT (item_id) DO NOTHING
    RETURNING item_id"""
_PG_ADD_TO_MONTHS = text("""
    INSERT INTO worker_months (month, post_id, worker_id, item_count, score_sum)
    SELECT * FROM unnest(CAST(:months AS varchar[]), CAST(:posts AS varchar[]), CAST(:workers AS varchar[]),
                         CAST(:counts AS integer[]), CAST(:sums AS bigint[]))
    ON CONFLICT (month, post_id, worker_id) DO UPDATE
    SET item_count = worker_months.item_count + excluded.item_count,
        score_sum = worker_months.score_sum + excluded.score_sum""")
_SQLITE_KNOWN_ITEMS = "SELECT item_id FROM work_items WHERE item_id IN (SELECT value FROM json_each(?))"
_SQLITE_INSERT_ITEMS = "INSERT INTO work_items (item_id) SELECT value FROM json_each(?)"
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
    """The `BulkScope` of `evaluation.work-scores`: a batch's items, each counted once."""

    def __init__(self, session: AsyncSession, ingested: Counter, duplicates: Counter) -> None:
        self._session = session
        self._ingested = ingested
        self._duplicates = duplicates
        self._postgres = session.get_bind().dialect.name == "postgresql"

    async def ingest(self, values: Sequence[WorkScoredData]) -> None:
        batch: dict[str, Item] = {}
        for item in values:
            if item.item_id not in batch:  # the same item twice in a batch: the first counts
                batch[item.item_id] = (
                    item.item_id,
                    month_of(item.scored_at),
                    item.post_id,
                    item.worker_id,
                    scaled(item.score),
                )
        if not batch:
            return
        items = await (self._insert_postgres(batch) if self._postgres else self._insert_sqlite(batch))
        self._duplicates.inc(len(values) - len(items))
        self._ingested.inc(len(items))

    async def _insert_postgres(self, batch: dict[str, Item]) -> list[Item]:
        # asyncpg's own fetch: SQLAlchemy's result processing cost more than the statement.
        asyncpg = (await (await self._session.connection()).get_raw_connection()).driver_connection
        assert asyncpg is not None, "a connection in a transaction has its driver's"
        inserted = await asyncpg.fetch(_PG_INSERT_ITEMS, list(batch))
        items = list(batch.values()) if len(inserted) == len(batch) else [batch[row[0]] for row in inserted]
        if items:
            months, posts, workers, counts, sums = zip(*month_totals(items), strict=True)
            await self._session.execute(
                _PG_ADD_TO_MONTHS,
                {"months": months, "posts": posts, "workers": workers, "counts": counts, "sums": sums},
            )
        return items

    async def _insert_sqlite(self, batch: dict[str, Item]) -> list[Item]:
        connection = await self._session.connection()
        # One JSON array parameter instead of thousands of bound ones.
        known = await connection.exec_driver_sql(_SQLITE_KNOWN_ITEMS, (orjson.dumps(list(batch)).decode(),))
        for (item_id,) in known:
            del batch[item_id]
        items = list(batch.values())
        if items:
            await connection.exec_driver_sql(_SQLITE_INSERT_ITEMS, (orjson.dumps(list(batch)).decode(),))
            await connection.exec_driver_sql(_SQLITE_ADD_TO_MONTHS, month_totals(items))
        return items
