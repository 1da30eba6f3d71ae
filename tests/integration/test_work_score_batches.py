"""`WorkScoreBatch` counts each work item once and adds it to its worker month, on both
databases: a batch of new items, a batch some of whose items were counted before (a
redelivery, an item sent twice), and, on PostgreSQL, instances writing overlapping batches
at the same time (during a rebalance both may hold the same records)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiosqlite
import pytest
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import evaluation.bootstrap
from evaluation.adapters import orm
from evaluation.adapters.work_scores import Item, WorkScoreBatch
from unionhub_runtime.database import create_engine, is_transient, sqlstate
from unionhub_runtime.migrations import upgrade_async

pytestmark = pytest.mark.integration


class Ingestion:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        registry = CollectorRegistry()
        self.ingested = Counter("ingested", "", registry=registry)
        self.duplicates = Counter("duplicates", "", registry=registry)
        self.deadlocks = 0

    async def batch(self, items: list[Item]) -> None:
        """One batch in its own transaction, again after a transient error, as the pipeline does."""
        for _ in range(20):
            try:
                async with self.sessions() as session, session.begin():
                    await WorkScoreBatch(session, self.ingested, self.duplicates).ingest(items)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.deadlocks += sqlstate(exc) == "40P01"
                await asyncio.sleep(random.uniform(0, 0.05))
        raise AssertionError("still failing after 20 attempts")

    async def stored(self) -> tuple[int, dict[tuple[str, str, str], tuple[int, int]]]:
        async with self.sessions() as session:
            items = await session.scalar(select(func.count()).select_from(orm.work_items))
            months = orm.worker_months.c
            rows = await session.execute(
                select(months.month, months.post_id, months.worker_id, months.item_count, months.score_sum)
            )
            return int(items or 0), {(m, p, w): (n, s) for m, p, w, n, s in rows}


@pytest.fixture
async def ingestion(databases: Callable[[], Awaitable[str]]) -> AsyncIterator[Ingestion]:
    url = await databases()
    await upgrade_async(evaluation.bootstrap.MIGRATIONS, url)
    engine = create_engine(url, pool_size=10)
    try:
        yield Ingestion(async_sessionmaker(engine, expire_on_commit=False))
    finally:
        await engine.dispose()


def items(ids: range, seed: int = 3) -> list[Item]:
    rng = random.Random(seed)
    out = []
    for i in ids:
        worker = f"w-{rng.randrange(40):03d}"
        month = rng.choice(("2018-05", "2018-06"))  # a batch may span months
        out.append((f"item-{i:06d}", month, f"post-{worker[-1]}", worker, rng.randrange(60_000, 100_001)))
    return out


def expected(counted: list[Item]) -> dict[tuple[str, str, str], tuple[int, int]]:
    totals: dict[tuple[str, str, str], tuple[int, int]] = {}
    for _, month, post, worker, score in {item[0]: item for item in counted}.values():
        n, s = totals.get((month, post, worker), (0, 0))
        totals[month, post, worker] = (n + 1, s + score)
    return totals


async def test_an_item_counts_once_whether_new_sent_again_or_twice_in_a_batch(ingestion: Ingestion) -> None:
    everything = items(range(3_000))
    first = everything[:2_000]
    await ingestion.batch(first)
    assert await ingestion.stored() == (2_000, expected(first))

    # Half already counted (a redelivery), half new, and one new item twice in the batch.
    second = [*everything[1_000:], everything[2_500]]
    await ingestion.batch(second)
    assert await ingestion.stored() == (3_000, expected(everything))
    assert ingestion.ingested._value.get() == 3_000
    assert ingestion.duplicates._value.get() == 1_000 + 1

    # Nothing new at all.
    await ingestion.batch(everything[:500])
    assert await ingestion.stored() == (3_000, expected(everything))
    assert ingestion.duplicates._value.get() == 1_000 + 1 + 500

    # New items, then one counted before: what was inserted before it is undone, then counted.
    more = items(range(3_000, 4_000), seed=4)
    await ingestion.batch([*more, everything[0]])
    assert await ingestion.stored() == (4_000, expected([*everything, *more]))
    assert ingestion.ingested._value.get() == 4_000
    assert ingestion.duplicates._value.get() == 1_000 + 1 + 500 + 1


async def test_a_batch_rolled_back_is_not_counted_in_the_metrics(ingestion: Ingestion) -> None:
    # A batch whose transaction fails after its statements (its commit, a step after them) is
    # written again; counted when written, its items showed in the metrics twice.
    async with ingestion.sessions() as session:
        await session.begin()
        await WorkScoreBatch(session, ingestion.ingested, ingestion.duplicates).ingest(items(range(100)))
        await session.rollback()
    await ingestion.batch(items(range(100)))
    assert ingestion.ingested._value.get() == 100
    assert ingestion.duplicates._value.get() == 0
    assert (await ingestion.stored())[0] == 100


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_a_batch_of_new_items_takes_few_hand_overs_to_sqlites_thread(
    ingestion: Ingestion, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each hand-over waits for the GIL, then for the event loop, busy decoding the next batch:
    # 15 of them tripled a batch's time in the service (bench/README.md, round six).
    await ingestion.batch(items(range(100)))  # the connection made, the pool warm
    hand_overs = 0
    queue = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, *args: Any, **kwargs: Any) -> Any:
        nonlocal hand_overs
        hand_overs += 1
        return await queue(self, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    batch = items(range(100, 10_100))
    await ingestion.batch(batch)
    # BEGIN IMMEDIATE, the ids, the sums, COMMIT.
    assert hand_overs <= 4
    assert await ingestion.stored() == (10_100, expected(items(range(100)) + batch))


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_instances_writing_overlapping_batches_at_once_count_each_item_once(ingestion: Ingestion) -> None:
    everything = items(range(6_000), seed=5)
    rng = random.Random(7)
    batches = []
    for _ in range(12):
        start = rng.randrange(0, 4_000)
        batch = everything[start : start + 2_000]
        rng.shuffle(batch)  # a batch comes in partition order, not in id order
        batches.append(batch)
    await asyncio.gather(*(ingestion.batch(batch) for batch in batches))
    counted = [item for batch in batches for item in batch]
    assert await ingestion.stored() == (len({i[0] for i in counted}), expected(counted))
    assert ingestion.ingested._value.get() == len({i[0] for i in counted})
    assert ingestion.deadlocks == 0  # every statement locks ids first, then worker months, in order


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_an_id_with_a_comma_is_refused_not_split(ingestion: Ingestion) -> None:
    # The decoders let none through (`common.Id`); PostgreSQL gets each column as one text
    # split at commas, which must never make two items of one.
    with pytest.raises(ValueError, match="comma"):
        await ingestion.batch([("item-1,item-2", "2018-06", "post-1", "w-001", 90_000)])
    assert await ingestion.stored() == (0, {})
