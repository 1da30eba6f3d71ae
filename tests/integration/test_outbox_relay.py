"""The outbox relay with rows it cannot send and transactions that commit out of id order
(issue 14, findings 4 and 5), on the real broker and both databases."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import membership.bootstrap
from membership.adapters.orm import runtime_tables
from tests.support import Collector, eventually, postgres_fetches
from unionhub_contracts import OutgoingEvent
from unionhub_runtime import outbox, postgres
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.kafka import create_producer
from unionhub_runtime.metrics import RuntimeMetrics
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration


@dataclass
class Relayed:
    relay: outbox.OutboxRelay
    sessions: async_sessionmaker[AsyncSession]
    registry: CollectorRegistry
    topic: str

    async def write(self, *events: OutgoingEvent) -> None:
        async with self.sessions() as session, session.begin():
            await outbox.write(session, runtime_tables, self.topic, [outbox.Pending(e) for e in events])
        self.relay.notify()

    async def write_unchecked(self, *events: OutgoingEvent) -> None:
        """Rows as `outbox.write` no longer writes them (over its size bound): a row written by an
        older version, or one a broker with a lower limit than the bound refuses."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                insert(runtime_tables.outbox),
                [
                    {
                        "event_id": e.id,
                        "topic": self.topic,
                        "event_type": e.type,
                        "key": e.key,
                        "value": e.value,
                        "created_at": datetime.now(UTC),
                    }
                    for e in events
                ],
            )

    def gauge(self, name: str) -> float:
        value = self.registry.get_sample_value(name)
        assert value is not None, f"no {name}"
        return value

    async def row_versions(self) -> list[Any]:
        """The outbox rows' versions (PostgreSQL's `xmin`; elsewhere their mark, which is all
        a round writes)."""
        async with self.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                query = "SELECT id, xmin::text FROM outbox ORDER BY id"
            else:
                query = "SELECT id, published_at FROM outbox ORDER BY id"
            return [tuple(row) for row in (await session.execute(text(query))).all()]

    async def unpublished(self) -> list[str]:
        o = runtime_tables.outbox.c
        async with self.sessions() as session:
            return list(
                (await session.execute(select(o.event_id).where(o.published_at.is_(None)).order_by(o.id))).scalars()
            )


@asynccontextmanager
async def relaying(
    kafka: KafkaSettings, database_url: str, poll_seconds: float = 0.2, batch_size: int = 2_000
) -> AsyncIterator[Relayed]:
    await upgrade_async(membership.bootstrap.MIGRATIONS, database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    registry = CollectorRegistry()
    relay = outbox.OutboxRelay(
        sessions=sessions,
        tables=runtime_tables,
        metrics=RuntimeMetrics(registry, "test"),
        poll_seconds=poll_seconds,
        batch_size=batch_size,
    )
    producer = create_producer(kafka, client_id="relay-test")
    await producer.start()
    relay.start(producer)
    try:
        yield Relayed(relay, sessions, registry, kafka.topic_prefix + "membership.events")
    finally:
        await relay.stop()
        await producer.stop()
        await engine.dispose()


@asynccontextmanager
async def another_round_under_way(database_url: str) -> AsyncIterator[None]:
    """Another instance's relay round, as far as the relay's lock tells: held until the end."""
    other = create_engine(database_url)
    try:
        async with other.connect() as connection, connection.begin():
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": outbox._RELAY_LOCK_KEY})
            yield
    finally:
        await other.dispose()


def event(n: int, key: str | None, padding: int = 0) -> OutgoingEvent:
    return OutgoingEvent(
        f"e-{n}-{uuid.uuid4().hex[:6]}", "test.event", key, orjson.dumps({"n": n, "padding": "x" * padding})
    )


def numbers(collected: Collector, topic: str) -> list[int]:
    return [orjson.loads(r.value)["n"] for r in collected.records if r.topic == topic]


async def test_an_unsendable_event_holds_back_only_the_events_of_its_own_key(
    kafka: KafkaSettings, database_url: str
) -> None:
    async with relaying(kafka, database_url) as relayed, Collector(kafka.bootstrap_servers, [relayed.topic]) as got:
        too_large = event(1, "k-big", padding=5 * 1024 * 1024)  # over the event bound: never sent
        behind = event(2, "k-big")
        await relayed.write_unchecked(too_large, behind, event(3, "k-a"), event(4, "k-b"))
        relayed.relay.notify()
        await got.wait_for(lambda: sorted(numbers(got, relayed.topic)) == [3, 4], what="the other keys' events")
        await relayed.write(event(5, "k-a"), event(6, None))  # and what comes later, with a key or none
        await got.wait_for(lambda: {5, 6} <= set(numbers(got, relayed.topic)), what="later events")
        assert await relayed.unpublished() == [too_large.id, behind.id], "per-key order: what is behind it waits"
        assert (
            relayed.registry.get_sample_value("unionhub_outbox_send_errors_total", {"topic": relayed.topic}) or 0
        ) > 0

        await relayed.relay.stop()  # the rounds below are the test's own
        relayed.relay._blocked[relayed.topic, "k-big", None].retry_at = time.monotonic() + 60  # still waiting
        await relayed.write(event(7, "k-c"), event(8, "k-d"))
        assert await relayed.relay.publish_pending() == 2
        assert relayed.gauge("unionhub_outbox_backlog_events") == 4  # the two held back, the two sent
        assert await relayed.relay.publish_pending() == 0
        assert relayed.gauge("unionhub_outbox_backlog_events") == 2
        assert relayed.gauge("unionhub_outbox_oldest_unpublished_age_seconds") > 0
        # Tried again and refused again, the rows held back are not written each time.
        versions = await relayed.row_versions()
        relayed.relay._blocked[relayed.topic, "k-big", None].retry_at = 0
        assert await relayed.relay.publish_pending() == 0
        assert relayed.relay._blocked[relayed.topic, "k-big", None].retry_at > time.monotonic()
        assert await relayed.row_versions() == versions
        assert await relayed.unpublished() == [too_large.id, behind.id]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_events_of_one_key_are_published_in_id_order_when_their_transactions_commit_out_of_it(
    kafka: KafkaSettings, databases: Callable[[], Awaitable[str]]
) -> None:
    async with (
        relaying(kafka, await databases()) as relayed,
        Collector(kafka.bootstrap_servers, [relayed.topic]) as got,
    ):
        first_written = asyncio.Event()

        async def slow_commit() -> None:
            async with relayed.sessions() as session, session.begin():
                await outbox.write(session, runtime_tables, relayed.topic, [outbox.Pending(event(1, "k"))])
                first_written.set()
                await asyncio.sleep(1.5)  # between the outbox write and the commit
            relayed.relay.notify()

        async def quick_commit() -> None:
            await first_written.wait()
            await relayed.write(event(2, "k"))

        await asyncio.gather(slow_commit(), quick_commit())
        await got.wait_for(lambda: len(numbers(got, relayed.topic)) == 2, what="both events")
        assert numbers(got, relayed.topic) == [1, 2]


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_round_on_postgresql_reads_and_marks_its_rows_in_one_statement(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each statement is a round trip, and while a round runs the events committed meanwhile
    # wait for the next: the lock's statement, then the rows read and marked at once.
    async with relaying(kafka, database_url) as relayed, Collector(kafka.bootstrap_servers, [relayed.topic]) as got:
        await relayed.relay.stop()  # the rounds below are the test's own
        await relayed.write(event(1, "k"), event(2, "k"), event(3, None))
        sent = postgres_fetches(monkeypatch, postgres)
        assert await relayed.relay.publish_pending() == 3
        assert [statement.split()[0] for statement in sent] == ["SELECT", "UPDATE"]
        await got.wait_for(lambda: sorted(numbers(got, relayed.topic)) == [1, 2, 3], what="the three events")
        assert [n for n in numbers(got, relayed.topic) if n != 3] == [1, 2]  # the key's order
        assert await relayed.unpublished() == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_claim_looks_its_rows_up_by_id_whatever_the_outbox_statistics_say(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox analysed while every row was published (its statistics: no pending row), then
    # a backlog: a planner that believes the pending rows are one chose a nested loop of the
    # backlog × the batch (seconds a claim, the relay's lock held throughout: bench, round
    # thirteen). The claim's work must grow with the batch, not with the backlog.
    backlog, batch = 5_000, 500
    async with relaying(kafka, database_url, batch_size=batch) as relayed:
        await relayed.relay.stop()  # the rounds below are the test's own
        await relayed.write(*(event(n, f"k-{n}") for n in range(200)))
        assert await relayed.relay.publish_pending() == 200
        await with_statistics_kept(relayed, "ANALYZE outbox")
        claim = await claim_after_a_backlog(relayed, monkeypatch, range(200, 200 + backlog), batch)
        # The batch's ids read off the index in order, then each row looked up: a few times the
        # batch, less than the backlog (which sorting every pending row first would read, and a
        # nested loop read for each row of the batch).
        assert rows_handled(claim.plan) < backlog, claim.plan
        while await relayed.relay.publish_pending():
            pass
        assert await relayed.unpublished() == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_claim_prepared_while_the_outbox_was_small_reads_it_by_index_once_it_has_grown(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prepared statement's generic plan, made on an outbox of a few rows, scanned the whole
    # table and tested each row against every id of the batch once a backlog came (seconds a
    # claim: bench, round thirteen). The database makes generic plans from the first run
    # here, as PostgreSQL settles on them after the fifth.
    backlog, batch = 3_000, 500
    async with relaying(kafka, database_url, batch_size=batch) as relayed:
        await relayed.relay.stop()  # the rounds below are the test's own
        await with_statistics_kept(
            relayed,
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_generic_plan', "
            "current_database()); END $$",
        )
        await relayed.sessions.kw["bind"].dispose()  # connections made from now on have the setting
        for n in range(6):
            await relayed.write(event(n, f"k-{n}"))
            assert await relayed.relay.publish_pending() == 1
        claim = await claim_after_a_backlog(relayed, monkeypatch, range(6, 6 + backlog), batch)
        assert claim.runs >= 6, "the claim runs on the connection of the small rounds, where it was prepared"
        assert scans_of_the_whole("outbox", claim.plan) == 0, claim.plan


# Rows of a page each, or so (under the size PostgreSQL compresses from): a backlog of a few
# thousand is a table large enough that reading it whole is not the cheapest plan.
ROW_PADDING = 1_500


@dataclass
class Explained:
    plan: dict[str, Any]
    runs: int  # of the prepared statement on its connection, before (PostgreSQL's own count)


async def with_statistics_kept(relayed: Relayed, *statements: str) -> None:
    """Runs `statements`, and keeps autovacuum off the outbox from then on: no analyse renews
    its statistics (nor, with them, the plans of its prepared statements) during the test."""
    async with relayed.sessions() as session, session.begin():
        for statement in (*statements, "ALTER TABLE outbox SET (autovacuum_enabled = false)"):
            await session.execute(text(statement))


async def claim_after_a_backlog(
    relayed: Relayed, monkeypatch: pytest.MonkeyPatch, backlog: range, batch: int
) -> Explained:
    """The plan of the claim of a round run once the events numbered `backlog` were written
    (rows a page each)."""
    await relayed.write(*(event(n, f"k-{n}", padding=ROW_PADDING) for n in backlog))
    explained = explained_claims(monkeypatch)
    assert await relayed.relay.publish_pending() == batch
    (claim,) = explained
    return claim


def explained_claims(monkeypatch: pytest.MonkeyPatch) -> list[Explained]:
    """The plans (`EXPLAIN ANALYZE` of the prepared statement itself, in a savepoint rolled
    back) the claims of the relay's rounds run with from now on, each explained before it runs."""
    explained: list[Explained] = []
    fetch = postgres.postgres_fetch

    async def explaining(on: Any, statement: str, *parameters: Any) -> Any:
        if statement.startswith("UPDATE outbox") and "RETURNING" in statement:  # the claim, not the unmark
            (prepared,) = await fetch(
                on,
                "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements WHERE statement = $1",
                statement,
            )
            await fetch(on, "SAVEPOINT explained")
            try:
                # EXECUTE takes its values as literals, not parameters.
                given = ", ".join("'{}'".format(str(value).replace("'", "''")) for value in parameters)
                (row,) = await fetch(on, f'EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE "{prepared[0]}" ({given})')
            finally:
                await fetch(on, "ROLLBACK TO SAVEPOINT explained")
            plan = row[0] if isinstance(row[0], list) else orjson.loads(row[0])  # a json codec, or text
            explained.append(Explained(plan[0]["Plan"], prepared[1]))
        return await fetch(on, statement, *parameters)

    monkeypatch.setattr(postgres, "postgres_fetch", explaining)
    return explained


def scans_of_the_whole(table: str, plan: dict[str, Any]) -> int:
    """How many nodes of `plan` read the whole of `table` (sequential scans)."""
    whole = plan["Node Type"] == "Seq Scan" and plan.get("Relation Name") == table
    return whole + sum(scans_of_the_whole(table, child) for child in plan.get("Plans", ()))


def rows_handled(plan: dict[str, Any]) -> float:
    """The rows every node of `plan` produced or filtered out, over all its loops."""
    loops = plan.get("Actual Loops", 1)
    handled = loops * (
        plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Join Filter", 0)
    )
    return handled + sum(rows_handled(child) for child in plan.get("Plans", ()))


async def test_a_full_round_counts_the_backlog_with_its_own_rows(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relaying(kafka, database_url, batch_size=2) as relayed:
        await relayed.relay.stop()  # the rounds below are the test's own
        await relayed.write(*(event(n, f"k-{n}") for n in range(5)))
        assert await relayed.relay.publish_pending() == 2
        assert relayed.gauge("unionhub_outbox_backlog_events") == 5  # counted as the round began
        assert relayed.gauge("unionhub_outbox_oldest_unpublished_age_seconds") > 0
        # A count reads every pending row: the next full rounds count at most once a second.
        assert await relayed.relay.publish_pending() == 2
        assert relayed.gauge("unionhub_outbox_backlog_events") == 5
        monkeypatch.setattr(outbox, "BACKLOG_COUNT_SECONDS", 0.0)
        assert await relayed.relay.publish_pending() == 1  # not a full round: its rows are the backlog
        assert relayed.gauge("unionhub_outbox_backlog_events") == 1
        await relayed.write(*(event(n, f"k-{n}") for n in range(5, 10)))
        assert await relayed.relay.publish_pending() == 2
        assert relayed.gauge("unionhub_outbox_backlog_events") == 5


async def test_a_round_whose_send_fails_or_is_cancelled_leaves_its_rows_unpublished(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with relaying(kafka, database_url) as relayed:
        await relayed.relay.stop()  # the rounds below are the test's own
        written = [event(1, "k"), event(2, None)]
        await relayed.write(*written)
        sending = asyncio.Event()

        async def failing(rows: Any) -> list[Any]:
            raise RuntimeError("the producer broke")

        async def stuck(rows: Any) -> list[Any]:
            sending.set()
            await asyncio.Event().wait()
            return []

        monkeypatch.setattr(relayed.relay, "_send", failing)
        with pytest.raises(RuntimeError, match="producer broke"):
            await relayed.relay.publish_pending()
        assert await relayed.unpublished() == [e.id for e in written]
        monkeypatch.setattr(relayed.relay, "_send", stuck)
        round_ = asyncio.create_task(relayed.relay.publish_pending())
        await sending.wait()
        round_.cancel()
        with pytest.raises(asyncio.CancelledError):
            await round_
        assert await relayed.unpublished() == [e.id for e in written]
        monkeypatch.undo()  # the round's transaction ended: its lock and rows are free
        assert await relayed.relay.publish_pending() == 2
        assert await relayed.unpublished() == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_relay_that_finds_another_instances_round_under_way_publishes_when_it_ends(
    kafka: KafkaSettings, databases: Callable[[], Awaitable[str]]
) -> None:
    """Instances share the outbox and one relay publishes at a time (an advisory lock). The
    round of one whose rows come in while another's round holds the lock publishes them once
    that round ends: not at its next poll (30 s here), and no later than the others' next round,
    which may never come (they publish only when woken)."""
    url = await databases()
    async with (
        relaying(kafka, url, poll_seconds=30) as relayed,
        Collector(kafka.bootstrap_servers, [relayed.topic]) as got,
    ):
        async with another_round_under_way(url):
            await relayed.write(event(1, "k"))  # committed and notified while the lock is held
            await asyncio.sleep(0.5)
            assert numbers(got, relayed.topic) == []
        await got.wait_for(
            lambda: numbers(got, relayed.topic) == [1], timeout=5, what="the event, once the lock is free"
        )
        assert await relayed.unpublished() == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_relay_whose_wait_for_another_round_runs_out_waits_again(
    kafka: KafkaSettings,
    databases: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A round that waited `LOCK_WAIT_SECONDS` for others' (a frozen peer, a Kafka that does
    not answer them) says so and waits again: its rows go once the lock is free, with no other
    commit or poll to wake it."""
    monkeypatch.setattr(outbox, "LOCK_WAIT_SECONDS", 0.3)
    url = await databases()

    async def warned() -> bool:
        return "held the relay's lock" in caplog.text

    async with (
        relaying(kafka, url, poll_seconds=30) as relayed,
        Collector(kafka.bootstrap_servers, [relayed.topic]) as got,
    ):
        async with another_round_under_way(url):
            await relayed.write(event(1, "k"))
            await eventually(warned, what="the round's warning", step=0.05)
            assert numbers(got, relayed.topic) == []
        await got.wait_for(
            lambda: numbers(got, relayed.topic) == [1], timeout=5, what="the event, once the lock is free"
        )
        assert "outbox relay failed" not in caplog.text


async def test_an_event_over_the_size_bound_is_refused_when_written(database_url: str) -> None:
    await upgrade_async(membership.bootstrap.MIGRATIONS, database_url)
    engine = create_engine(database_url)
    try:
        with pytest.raises(outbox.EventTooLarge):
            async with session_factory(engine)() as session, session.begin():
                await outbox.write(
                    session, runtime_tables, "t", [outbox.Pending(event(1, "k", padding=outbox.MAX_EVENT_BYTES))]
                )
    finally:
        await engine.dispose()


async def test_a_round_on_stop_publishes_no_row_past_the_ceiling_it_was_given(
    kafka: KafkaSettings, database_url: str
) -> None:
    """On stop the relay publishes what was committed before it, not what other instances
    keep writing meanwhile (their relays' work): a round takes a ceiling."""
    async with relaying(kafka, database_url) as relayed:
        await relayed.relay.stop()  # publishes nothing more by itself from here
        before, after = event(1, "k"), event(2, "k")
        await relayed.write(before)
        o = runtime_tables.outbox.c
        async with relayed.sessions() as session:
            ceiling = await session.scalar(select(o.id).where(o.event_id == before.id))
        await relayed.write(after)
        assert await relayed.relay.publish_pending(ceiling) == 1
        assert await relayed.unpublished() == [after.id]


async def test_a_round_larger_than_a_record_batch_keeps_each_keys_order_and_partition(
    kafka: KafkaSettings, database_url: str
) -> None:
    """The relay hands Kafka whole record batches (256 KiB): a round of 2,000 events of 1 KiB
    on eight keys and none fills several a partition; each key's events arrive in the order
    written, on the partition Kafka's default partitioner gives the key, each event once,
    with its trace context."""
    keys = [f"k-{n}" for n in range(8)]
    written = [event(n, keys[n % 9] if n % 9 < 8 else None, padding=1024) for n in range(2_000)]
    async with relaying(kafka, database_url) as relayed, Collector(kafka.bootstrap_servers, [relayed.topic]) as got:
        async with relayed.sessions() as session, session.begin():
            traced = [outbox.Pending(e, trace_of(n)) for n, e in enumerate(written)]
            await outbox.write(session, runtime_tables, relayed.topic, traced)
        relayed.relay.notify()
        await got.wait_for(lambda: len(numbers(got, relayed.topic)) >= len(written), what="every event")
        await eventually(lambda: _none(relayed.unpublished()), "every row marked published")
        partitions = sorted(got.partitions(relayed.topic))
    records = [r for r in got.records if r.topic == relayed.topic]
    assert sorted(numbers(got, relayed.topic)) == list(range(len(written))), "each event once"
    for key in keys:
        mine = [r for r in records if r.key == key.encode()]
        assert [orjson.loads(r.value)["n"] for r in mine] == [n for n, e in enumerate(written) if e.key == key]
        assert {r.partition for r in mine} == {DefaultPartitioner()(key.encode(), partitions, partitions)}
    assert all(r.headers["traceparent"].decode() == trace_of(orjson.loads(r.value)["n"]) for r in records)


async def _none(rows: Awaitable[list[str]]) -> bool:
    return not await rows


def trace_of(n: int) -> str:
    return f"00-{n:032x}-{n + 1:016x}-01"
