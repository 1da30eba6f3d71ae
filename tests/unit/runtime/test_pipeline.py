"""The message pipeline (`Pipeline.process`) on its own: records built here, an in-memory
SQLite database for its transaction (inbox, outbox, held commands), a fake service scope
that applies membership commands to tables of its own, and a fake producer that keeps the
dead letters. No broker, no PostgreSQL: what is checked is what the pipeline left behind
(outbox rows, held rows, the scope's rows, dead letters, counters)."""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from unittest.mock import ANY

import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import StaticPool

from tests.support import command
from unionhub_contracts import CloudEvent, RejectionCode
from unionhub_contracts.membership import MemberEnrolled
from unionhub_domain.rejections import Missing
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.deadletters import DeadLetters
from unionhub_runtime.holding import Holding, aggregate_lanes
from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.metrics import RuntimeMetrics
from unionhub_runtime.pipeline import Decoder, Pipeline, PipelineConfig
from unionhub_runtime.reads import ReadsTogether
from unionhub_runtime.scopes import Emit
from unionhub_runtime.tables import RuntimeTables, add_runtime_tables

TOPIC = "membership.commands"
ATTEMPTS = 2  # handler_attempts: a failing message is tried this often in its batch, then alone
UNION = {"union_id": "bj", "name": "Beijing", "level": "federation", "founded_on": "1949-01-01"}


def enroll(member_id: str, *, union_id: str = "bj", id: str | None = None, **extra: Any) -> bytes:
    return command(
        "member.enroll", {"member_id": member_id, "union_id": union_id, "joined_on": "2018-03-01"}, id=id, **extra
    )


# The fake service's own state, in the batch's database and transaction.
metadata = MetaData()
runtime: RuntimeTables = add_runtime_tables(metadata)
unions = Table("unions", metadata, Column("union_id", String, primary_key=True))
# No key on purpose: a message applied twice shows as two rows.
enrolments = Table(
    "enrolments",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String, nullable=False),
    Column("union_id", String, nullable=False),
)


@dataclass
class Registry:
    """A fake service scope (`BatchScope`): `union.register` adds a union; `member.enroll`
    needs its union (else `Missing`, as the services' handlers raise it) and adds an
    enrolment; the member `bug` makes the handler raise like a bug would."""

    session: AsyncSession
    tries: collections.Counter[str]  # handle() calls by message id, across transactions
    prefetched: list[list[str]]  # the message ids of each prefetch, across transactions

    async def prefetch(self, events: Sequence[CloudEvent[Any]], reads: ReadsTogether | None = None) -> None:
        self.prefetched.append([event.id for event in events])

    async def handle(self, event: CloudEvent[Any], *, final: bool = False) -> Sequence[Emit]:
        self.tries[event.id] += 1
        data = event.data
        if event.type == "union.register":
            await self.session.execute(insert(unions).values(union_id=data.union_id))
            return [Emit("union.registered", data, key=data.union_id)]
        if data.member_id == "bug":
            raise RuntimeError("handler bug")
        if await self.session.scalar(select(unions.c.union_id).where(unions.c.union_id == data.union_id)) is None:
            raise Missing(f"union:{data.union_id}", RejectionCode.NOT_FOUND, f"union {data.union_id} is not registered")
        await self.session.execute(insert(enrolments).values(member_id=data.member_id, union_id=data.union_id))
        enrolled = MemberEnrolled(member_id=data.member_id, union_id=data.union_id, joined_on=data.joined_on)
        return [Emit("member.enrolled", enrolled, key=data.member_id)]

    async def flush(self, together: InsertsTogether | None = None) -> None:
        return None

    def committed(self) -> None:
        return None


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


@dataclass
class FakeProducer:
    """Stands in for the service's Kafka producer: keeps what it is sent, acknowledged at once."""

    sent: list[Sent] = field(default_factory=list)
    client: Any = field(
        default_factory=lambda: SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=lambda topic: {0}))
    )

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        self.sent.append(Sent(topic, key, value, dict(headers or ())))
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged


def provides(event_type: str, data: Any) -> list[str]:
    """The prerequisites a message makes known (a service's `provides`): a registered union."""
    return [f"union:{data.union_id}"] if event_type in ("union.register", "union.registered") else []


@dataclass
class Harness:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: FakeProducer = field(default_factory=FakeProducer)
    metrics: RuntimeMetrics = field(default_factory=lambda: RuntimeMetrics(CollectorRegistry(), "test"))
    tries: collections.Counter[str] = field(default_factory=collections.Counter)
    prefetched: list[list[str]] = field(default_factory=list)
    offsets: itertools.count[int] = field(default_factory=itertools.count)

    def pipeline(
        self,
        *,
        holding: bool | Holding = False,  # or the holding to use
        rejects: bool = True,
        topic: str = TOPIC,
        bulk: Callable[[AsyncSession], Any] | None = None,  # a bulk stream's scope
        decoder: Decoder | None = None,
    ) -> Pipeline:
        held = (
            holding
            if isinstance(holding, Holding)
            else Holding(
                runtime, hold_seconds=600, provides=provides, metrics=self.metrics, clock=lambda: datetime.now(UTC)
            )
            if holding
            else None
        )
        pipeline = Pipeline(
            PipelineConfig(
                consumer=topic,
                topic=topic,
                events_topic="membership.events",
                source="membership",
                rejects=rejects,
                handler_attempts=ATTEMPTS,
                max_backoff_seconds=0.05,
                bulk=bulk is not None,
            ),
            scope=bulk or (lambda session: Registry(session, self.tries, self.prefetched)),
            sessions=self.sessions,
            tables=runtime,
            dead_letters=DeadLetters(lambda: self.producer),  # type: ignore[arg-type, return-value]
            metrics=self.metrics,
            on_commit=lambda: None,
            holding=held,
            decoder=decoder,
        )
        if held is not None:
            held.register(pipeline, aggregate_lanes(TOPIC))
        return pipeline

    def records(self, *values: bytes, topic: str = TOPIC) -> list[ConsumerRecord[bytes, bytes]]:
        """Consumer records of `values` on one partition of `topic`, in order."""
        return [
            ConsumerRecord(
                topic=topic,
                partition=0,
                offset=next(self.offsets),
                timestamp=0,
                timestamp_type=0,
                key=b"k",
                value=value,
                checksum=None,
                serialized_key_size=1,
                serialized_value_size=len(value),
                headers=[],
            )
            for value in values
        ]

    async def outbox(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The events written to the outbox (CloudEvents as they will be published), in order."""
        o = runtime.outbox.c
        async with self.sessions() as session:
            rows = (await session.execute(select(o.topic, o.event_type, o.value).order_by(o.id))).all()
        assert {row.topic for row in rows} <= {"membership.events"}
        return [orjson.loads(row.value) for row in rows if event_type in (None, row.event_type)]

    async def enrolled(self) -> list[str]:
        async with self.sessions() as session:
            return list((await session.execute(select(enrolments.c.member_id).order_by(enrolments.c.n))).scalars())

    async def held(self) -> list[tuple[str, str | None]]:
        h = runtime.held.c
        async with self.sessions() as session:
            return [
                (row.message_id, row.waiting_for)
                for row in await session.execute(select(h.message_id, h.waiting_for).order_by(h.seq))
            ]

    async def inbox_rows(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(runtime.inbox)) or 0)

    def counted(self, name: str, *labels: str) -> float:
        return float(getattr(self.metrics, name).labels(*labels)._value.get())


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    # The runtime's own engine (savepoints, BEGIN IMMEDIATE), on one in-memory connection.
    engine = create_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield Harness(engine, session_factory(engine))
    await engine.dispose()


async def test_a_failing_handler_dead_letters_its_record_alone_and_the_batch_is_applied(harness: Harness) -> None:
    pipeline = harness.pipeline()
    batch = harness.records(command("union.register", UNION), enroll("m-1"), enroll("bug", id="the-bug"), enroll("m-2"))
    await pipeline.process(batch)
    assert await harness.enrolled() == ["m-1", "m-2"]
    assert [e["type"] for e in await harness.outbox()] == ["union.registered", "member.enrolled", "member.enrolled"]
    (letter,) = harness.producer.sent
    assert letter.topic == f"{TOPIC}.dlq" and letter.value == batch[2].value and letter.key == b"k"
    assert letter.headers["error.code"] == b"handler_error"
    assert b"handler bug" in letter.headers["error.message"]
    assert letter.headers["original.offset"] == str(batch[2].offset).encode()
    # Tried as often as configured inside the batch, then as often again alone.
    assert harness.tries["the-bug"] == 2 * ATTEMPTS
    assert harness.counted("dead_letters", TOPIC, "handler_error") == 1
    # A bug is not a rule: nothing answers the sender, nothing is held.
    assert await harness.outbox("command.rejected") == [] and await harness.held() == []


async def test_a_message_is_applied_once_however_often_it_comes(harness: Harness) -> None:
    pipeline = harness.pipeline()
    twice = enroll("m-1", id="enroll-once")
    await pipeline.process(harness.records(command("union.register", UNION), twice, twice))  # twice in a batch
    await pipeline.process(harness.records(twice, enroll("m-2")))  # and again in a later batch
    assert await harness.enrolled() == ["m-1", "m-2"]
    enrolled = [(e["data"]["member_id"], e["correlationid"]) for e in await harness.outbox("member.enrolled")]
    assert enrolled == [("m-1", "enroll-once"), ("m-2", ANY)]
    assert harness.counted("inbox_duplicates", TOPIC) == 2
    assert harness.producer.sent == []
    # Identity is source + id: another sender's message with the same id is another message.
    await pipeline.process(harness.records(enroll("m-3", id="enroll-once", source="other-system")))
    assert await harness.enrolled() == ["m-1", "m-2", "m-3"]
    assert await harness.inbox_rows() == 4


async def test_a_batch_with_messages_applied_before_reads_again_for_the_others(harness: Harness) -> None:
    # Its first reads may predate a transaction its claim waited for (one that applied them).
    pipeline = harness.pipeline(holding=True)
    await pipeline.process(harness.records(command("union.register", UNION, id="u")))
    harness.prefetched.clear()
    await pipeline.process(harness.records(enroll("m-1", id="a"), enroll("m-1", id="a")))  # one message twice
    assert harness.prefetched == [["a", "a"]]
    harness.prefetched.clear()
    await pipeline.process(harness.records(enroll("m-2", id="b"), enroll("m-1", id="a")))
    assert harness.prefetched == [["b", "a"], ["b"]]
    assert await harness.enrolled() == ["m-1", "m-2"]


async def test_a_command_missing_its_prerequisite_is_held_and_answered_with_command_held(harness: Harness) -> None:
    pipeline = harness.pipeline(holding=True)
    await pipeline.process(harness.records(enroll("m-1", id="early")))
    assert await harness.held() == [("early", "union:bj")]
    assert await harness.enrolled() == []
    (held,) = await harness.outbox()
    assert held["type"] == "command.held" and held["correlationid"] == "early"
    assert held["data"] == {"command_id": "early", "command_type": "member.enroll", "waiting_for": "union:bj"}
    assert harness.counted("commands", "member.enroll", "held", "") == 1
    # What it waits for arrives: it is applied in that transaction, and no longer held.
    await pipeline.process(harness.records(command("union.register", UNION, id="the-union")))
    assert await harness.enrolled() == ["m-1"]
    assert [(e["type"], e["correlationid"]) for e in await harness.outbox()][1:] == [
        ("union.registered", "the-union"),
        ("member.enrolled", "early"),
    ]
    assert await harness.held() == []
    assert harness.producer.sent == []


async def test_without_holding_a_missing_prerequisite_is_a_rejection(harness: Harness) -> None:
    pipeline = harness.pipeline(holding=False)
    await pipeline.process(harness.records(enroll("m-1", union_id="nowhere", id="orphan")))
    (rejected,) = await harness.outbox()
    assert rejected["type"] == "command.rejected" and rejected["correlationid"] == "orphan"
    assert rejected["data"] == {
        "command_id": "orphan",
        "command_type": "member.enroll",
        "code": "not_found",
        "reason": "union nowhere is not registered",
    }
    assert await harness.held() == [] and await harness.enrolled() == []
    assert harness.producer.sent == []


async def test_undecodable_records_are_dead_lettered_and_a_readable_command_is_answered_invalid(
    harness: Harness,
) -> None:
    pipeline = harness.pipeline()
    garbage = b"\x00\x01 definitely not json"
    bad_date = command("member.enroll", {"member_id": "m-1", "union_id": "bj", "joined_on": "someday"}, id="bad-date")
    await pipeline.process(harness.records(garbage, bad_date, command("union.register", UNION, id="good")))
    letters = harness.producer.sent
    assert [(s.topic, s.value, s.headers["error.code"]) for s in letters] == [
        (f"{TOPIC}.dlq", garbage, b"not_json"),
        (f"{TOPIC}.dlq", bad_date, b"invalid_data"),
    ]
    assert b"joined_on" in letters[1].headers["error.message"]
    # The command with an id and a type is answered; the garbage has no one to answer.
    rejected, registered = await harness.outbox()
    assert rejected["type"] == "command.rejected" and rejected["correlationid"] == "bad-date"
    assert rejected["correlationsource"] == "tests"
    assert {k: rejected["data"][k] for k in ("command_id", "command_type", "code")} == {
        "command_id": "bad-date",
        "command_type": "member.enroll",
        "code": "invalid",
    }
    assert registered["type"] == "union.registered" and registered["correlationid"] == "good"
    assert harness.counted("messages_processed", TOPIC, "dead_lettered") == 2


async def test_an_undecodable_event_is_dead_lettered_without_an_answer(harness: Harness) -> None:
    events = "membership.events"  # a pipeline reading another service's events answers no one
    pipeline = harness.pipeline(rejects=False, topic=events)
    bad_date = command("member.enrolled", {"member_id": "m-1", "union_id": "bj", "joined_on": "someday"})
    await pipeline.process(harness.records(bad_date, topic=events))
    assert [(s.topic, s.headers["error.code"]) for s in harness.producer.sent] == [(f"{events}.dlq", b"invalid_data")]
    assert await harness.outbox() == []


@dataclass
class Counting:
    """A fake bulk scope (`BulkScope`): stores the batch's values as enrolments; the value
    `bug` makes the whole batch fail, as a bug would."""

    session: AsyncSession
    batches: list[int]  # sizes of the batches it was handed, committed or not

    async def ingest(self, values: Sequence[str]) -> None:
        self.batches.append(len(values))
        await self.session.execute(insert(enrolments), [{"member_id": v, "union_id": "bj"} for v in values])
        if "bug" in values:
            raise RuntimeError("handler bug")


async def test_a_bulk_batch_failing_as_a_whole_is_halved_until_its_culprit_is_dead_lettered_alone(
    harness: Harness,
) -> None:
    topic = "evaluation.work-scores"  # a bulk stream: one message type
    batches: list[int] = []
    pipeline = harness.pipeline(
        topic=topic,
        bulk=lambda session: Counting(session, batches),
        decoder=lambda value, headers: value.decode() if value else "",
    )
    values = [f"m-{i:04d}" for i in range(1024)]
    values[700] = "bug"
    batch = harness.records(*(v.encode() for v in values), topic=topic)
    await pipeline.process(batch)
    assert await harness.enrolled() == [v for v in values if v != "bug"]  # every other value, in order, once
    (letter,) = harness.producer.sent
    assert letter.topic == f"{topic}.dlq" and letter.value == b"bug"
    assert letter.headers["original.offset"] == str(batch[700].offset).encode()
    # Halving: about two transactions a level (10 levels for 1,024), each failing one tried
    # ATTEMPTS times; one by one it would have been over a thousand.
    assert len(batches) <= ATTEMPTS * (1 + 2 * 10) + 10
    assert harness.counted("messages_processed", topic, "applied") == 1023


async def test_a_released_command_is_counted_once_when_its_transaction_commits(harness: Harness) -> None:
    """The releasing batch fails (a bug beside the prerequisite) and is tried again, then
    split: the release is counted for the attempt that committed only, and as a command's
    outcome, not as a second message taken from the topic."""
    pipeline = harness.pipeline(holding=True)
    await pipeline.process(harness.records(enroll("m-1", id="early")))
    await pipeline.process(harness.records(command("union.register", UNION), enroll("bug", id="the-bug")))
    assert await harness.enrolled() == ["m-1"] and await harness.held() == []
    assert harness.counted("commands", "member.enroll", "held", "") == 1
    assert harness.counted("commands", "member.enroll", "applied", "") == 1
    assert harness.counted("commands", "union.register", "applied", "") == 1
    # Messages taken from the topic: the enrolment once (held), the registration once.
    assert harness.counted("messages_processed", TOPIC, "held") == 1
    assert harness.counted("messages_processed", TOPIC, "applied") == 1
    hold = harness.metrics.hold_seconds.labels(TOPIC)
    assert sum(bucket.get() for bucket in hold._buckets) == 1
