"""Ingestion of `evaluation.work-scores`: each item counted once, aggregated per month,
post and worker, stored in a few bulk statements per batch.

This is the service's high-volume path (see bench/README.md), so the statements are
written for each database rather than through the generic Core constructs, each taking a
whole batch in one parameter: on PostgreSQL one statement inserts the ids and adds their
items to their worker months; on SQLite the ids are inserted from one JSON array and their
sums added from another, the ids counted before left out when there are some.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from unionhub_contracts import DecodeError, DecodeErrorCode
from unionhub_contracts.codec import Headers
from unionhub_contracts.fast import decode_work_scored
from unionhub_runtime.database import is_unique_violation, sqlite_fetchall

from ..domain.post_star import month_of, scaled

Item = tuple[str, str, str, str, int]  # item_id, month, post_id, worker_id, score (thousandths)

# Each column of a batch goes as one text, its values joined by commas, which PostgreSQL
# splits: asyncpg encoded a list of 10,000 ids as an array in 7 ms of the event loop, the
# joined text in 0.5 (no id has a comma: `common.Id`; `_joined` makes sure).
_IDS = "unnest(string_to_array(:item_ids, ','))"
_MONTH_ROWS = """unnest(string_to_array(:months, ','), string_to_array(:posts, ','),
                      string_to_array(:workers, ','), CAST(string_to_array(:counts, ',') AS integer[]),
                      CAST(string_to_array(:sums, ',') AS bigint[]))"""
_ADD_TO_MONTHS = f"""
    INSERT INTO worker_months (month, post_id, worker_id, item_count, score_sum)
    SELECT * FROM {_MONTH_ROWS}"""
_ADDING = """
    ON CONFLICT (month, post_id, worker_id) DO UPDATE
    SET item_count = worker_months.item_count + excluded.item_count,
        score_sum = worker_months.score_sum + excluded.score_sum"""
# The usual batch, all of whose items are new: a plain INSERT of the ids (in id order: two
# instances inserting the same ones wait for each other rather than deadlock) and the batch's
# sums (worked out here, in key order for the same reason) added to their worker months. An id
# counted before fails it with a unique violation, and the batch goes to `_PG_INGEST` instead:
# `ON CONFLICT DO NOTHING` inserts each row speculatively, which took PostgreSQL a third of
# the batch's time when every item was new (bench/README.md, round four). The ids are the main
# statement and the sums a CTE nothing reads, which PostgreSQL runs after it: both statements
# lock ids first, then worker months (no deadlock between them), and a batch counted before
# fails before it touches a worker month.
_PG_INGEST_NEW = text(f"""
    WITH added AS ({_ADD_TO_MONTHS}{_ADDING})
    INSERT INTO work_items (item_id) SELECT {_IDS} ORDER BY 1""")
# A batch some of whose items were counted before (a redelivery, an item sent twice, another
# instance's batch written meanwhile): its new ids inserted, in id order, and, should every one
# be new after all, the batch's sums added in the same statement. Its first row says how many
# ids were new; when some were not, the new ones follow, and their sums go in a second
# statement of the same transaction.
_PG_INGEST = text(f"""
    WITH new AS (
        INSERT INTO work_items (item_id) SELECT {_IDS} ORDER BY 1
        ON CONFLICT (item_id) DO NOTHING
        RETURNING item_id
    ), counted AS (
        SELECT count(*) AS n FROM new
    ), added AS ({_ADD_TO_MONTHS}
        WHERE (SELECT n FROM counted) = :total{_ADDING}
    )
    SELECT NULL AS item_id, (SELECT n FROM counted) AS n
    UNION ALL
    SELECT item_id, NULL FROM new WHERE (SELECT n FROM counted) < :total""")
_PG_ADD_TO_MONTHS = text(_ADD_TO_MONTHS + _ADDING)
_SQLITE_KNOWN_ITEMS = "SELECT item_id FROM work_items WHERE item_id IN (SELECT value FROM json_each(?))"
_SQLITE_INSERT_ITEMS = "INSERT INTO work_items (item_id) SELECT value FROM json_each(?)"
# `WHERE true`: SQLite's parser would read `ON CONFLICT` as a join's otherwise.
_SQLITE_ADD_TO_MONTHS = """
    INSERT INTO worker_months (month, post_id, worker_id, item_count, score_sum)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]'), json_extract(value, '$[4]')
    FROM json_each(?) WHERE true
    ON CONFLICT (month, post_id, worker_id) DO UPDATE
    SET item_count = item_count + excluded.item_count, score_sum = score_sum + excluded.score_sum"""


def decode_item(value: bytes | None, headers: Headers | None) -> Item:
    """The work item in a record, as stored (the bulk stream's decoder: it runs while the batch
    before is written). Raises `DecodeError` for what cannot be counted, its month included."""
    item_id, worker_id, post_id, score, scored_at, timestamp = decode_work_scored(value, headers)
    try:
        month = month_of(scored_at, timestamp)
    except (ValueError, OverflowError):  # e.g. 0001-01-01T00:00:00+14:00: no month in Shanghai
        raise DecodeError(
            DecodeErrorCode.INVALID_DATA, "data.scored_at: no calendar month in Asia/Shanghai", None, None
        ) from None
    return (item_id, month, post_id, worker_id, scaled(score))


def month_totals(items: Iterable[Item]) -> list[tuple[str, str, str, int, int]]:
    """(month, post, worker, items, score sum) per worker month, in a fixed order (the same
    order in every instance's transaction: no deadlock between them)."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for _, month, post_id, worker_id, score in items:
        total = totals.setdefault((month, post_id, worker_id), [0, 0])
        total[0] += 1
        total[1] += score
    return [(*key, count, score_sum) for key, (count, score_sum) in sorted(totals.items())]


def _columns(totals: list[tuple[str, str, str, int, int]]) -> dict[str, str]:
    months, posts, workers, counts, sums = zip(*totals, strict=True) if totals else ((),) * 5
    return {
        "months": _joined(months),
        "posts": _joined(posts),
        "workers": _joined(workers),
        "counts": ",".join(map(str, counts)),
        "sums": ",".join(map(str, sums)),
    }


def _joined(values: Sequence[str]) -> str:
    joined = ",".join(values)
    if joined.count(",") != max(len(values) - 1, 0):  # the decoders let no such id through
        raise ValueError("an id with a comma cannot be stored as a work item's")
    return joined


class WorkScoreBatch:
    """The `BulkScope` of `evaluation.work-scores`: a batch's items, each counted once."""

    def __init__(self, session: AsyncSession, ingested: Counter, duplicates: Counter) -> None:
        self._session = session
        self._ingested = ingested
        self._duplicates = duplicates
        self._postgres = session.get_bind().dialect.name == "postgresql"

    async def ingest(self, values: Sequence[Item]) -> None:
        batch: dict[str, Item] = {}
        for item in values:
            batch.setdefault(item[0], item)  # the same item twice in a batch: the first counts
        if not batch:
            return
        new = await (self._insert_postgres(batch) if self._postgres else self._insert_sqlite(batch))

        def counted(_session: Session) -> None:
            self._duplicates.inc(len(values) - new)
            self._ingested.inc(new)

        # Counted once committed: a batch whose transaction fails later is written again.
        event.listen(self._session.sync_session, "after_commit", counted, once=True)

    async def _insert_postgres(self, batch: dict[str, Item]) -> int:
        parameters = {"item_ids": _joined(list(batch)), **_columns(month_totals(batch.values()))}
        try:
            async with self._session.begin_nested():
                await self._session.execute(_PG_INGEST_NEW, parameters)
            return len(batch)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
        rows = (await self._session.execute(_PG_INGEST, {**parameters, "total": len(batch)})).all()
        new = int(rows[0].n)
        if new not in (0, len(batch)):  # some came before: the sums of the new ones only
            totals = month_totals([batch[row.item_id] for row in rows[1:]])
            await self._session.execute(_PG_ADD_TO_MONTHS, _columns(totals))
        return new

    async def _insert_sqlite(self, batch: dict[str, Item]) -> int:
        # Each statement in one hand-over to aiosqlite's thread, its parameter one JSON array.
        # The usual batch, all of whose items are new, is inserted as it is, with no lookup
        # first; an id counted before fails that statement alone (SQLite's default conflict
        # resolution undoes the statement, not the transaction), and the known ids are left out.
        ids = _json(list(batch))
        try:
            await sqlite_fetchall(self._session, _SQLITE_INSERT_ITEMS, (ids,))
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            for (item_id,) in await sqlite_fetchall(self._session, _SQLITE_KNOWN_ITEMS, (ids,)):
                del batch[item_id]
            if not batch:
                return 0
            await sqlite_fetchall(self._session, _SQLITE_INSERT_ITEMS, (_json(list(batch)),))
        await sqlite_fetchall(self._session, _SQLITE_ADD_TO_MONTHS, (_json(month_totals(batch.values())),))
        return len(batch)


def _json(values: list[Any]) -> str:
    return orjson.dumps(values).decode()
