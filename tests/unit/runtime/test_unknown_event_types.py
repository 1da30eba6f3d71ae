"""A service reading another's `*.events` topic skips and counts an event type it does not
know (a producer upgraded first), never dead-letters it; a commands topic still does. The
pipeline on its own, as in test_pipeline: records built here, SQLite in memory, a fake
producer keeping the dead letters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry
from sqlalchemy.pool import StaticPool

from tests.support import command
from unionhub_contracts import CloudEvent
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.deadletters import DeadLetters
from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.metrics import OTHER, RuntimeMetrics
from unionhub_runtime.pipeline import MAX_SKIPPED_TYPES, MAX_TYPE_LABEL, Pipeline, PipelineConfig
from unionhub_runtime.reads import ReadsTogether
from unionhub_runtime.scopes import Emit

from .test_pipeline import FakeProducer, metadata, runtime

EVENTS = "membership.events"
COMMANDS = "membership.commands"


def enrolled(member_id: str, **extra: Any) -> bytes:
    data = {"member_id": member_id, "union_id": "bj", "joined_on": "2018-03-01"}
    return command("member.enrolled", data, id=f"enrolled-{member_id}", source="membership", **extra)


def renamed(n: int = 1, type_: str = "member.renamed") -> bytes:
    """An event of a type this version does not know, as a newer membership would publish it."""
    return command(type_, {"member_id": "m-1", "name": "Secret Name"}, id=f"renamed-{n}", source="membership")


@dataclass
class Applied:
    """A fake batch scope that notes what it was handed."""

    seen: list[tuple[str, str]]

    async def prefetch(self, events: Sequence[CloudEvent[Any]], reads: ReadsTogether | None = None) -> None:
        return None

    async def handle(self, event: CloudEvent[Any], *, final: bool = False) -> Sequence[Emit]:
        self.seen.append((event.type, event.id))
        return ()

    async def flush(self, together: InsertsTogether | None = None) -> None:
        return None

    def committed(self) -> None:
        return None


@dataclass
class Reader:
    pipeline: Pipeline
    metrics: RuntimeMetrics
    producer: FakeProducer
    seen: list[tuple[str, str]] = field(default_factory=list)

    def records(self, *values: bytes, headers: list[tuple[str, bytes]] | None = None) -> list[ConsumerRecord]:
        topic = self.pipeline.config.topic
        return [
            ConsumerRecord(topic, 0, offset, 0, 0, b"m-1", value, None, 3, len(value), headers or [])
            for offset, value in enumerate(values)
        ]

    def skipped(self) -> dict[str, float]:
        return {
            s.labels["type"]: s.value
            for metric in self.metrics.registry.collect()
            for s in metric.samples
            if s.name == "unionhub_events_skipped_total"
        }

    def processed(self, outcome: str) -> float:
        topic = self.pipeline.config.topic
        return float(self.metrics.messages_processed.labels(topic, outcome)._value.get())


@pytest.fixture
async def reader(request: pytest.FixtureRequest) -> AsyncIterator[Reader]:
    """A pipeline reading `membership.events`, or (`indirect` parameter) `membership.commands`."""
    topic = getattr(request, "param", EVENTS)
    engine = create_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    metrics, producer, seen = RuntimeMetrics(CollectorRegistry(), "test"), FakeProducer(), []
    pipeline = Pipeline(
        PipelineConfig(
            consumer=topic,
            topic=topic,
            events_topic="evaluation.events",
            source="evaluation",
            rejects=topic == COMMANDS,
            max_backoff_seconds=0.05,
        ),
        scope=lambda session: Applied(seen),
        sessions=session_factory(engine),
        tables=runtime,
        dead_letters=DeadLetters(lambda: producer),  # type: ignore[arg-type, return-value]
        metrics=metrics,
        on_commit=lambda: None,
    )
    yield Reader(pipeline, metrics, producer, seen)
    await engine.dispose()


async def test_an_unknown_event_type_is_skipped_counted_and_logged_and_the_records_behind_it_applied(
    reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    batch = reader.records(enrolled("m-1"), renamed(), enrolled("m-2", badge="a newer optional field"))
    with caplog.at_level(logging.WARNING, logger="unionhub_runtime.pipeline"):
        await reader.pipeline.process(batch)
    assert reader.seen == [("member.enrolled", "enrolled-m-1"), ("member.enrolled", "enrolled-m-2")]
    assert reader.producer.sent == []  # nothing dead-lettered
    assert reader.skipped() == {"member.renamed": 1}
    assert reader.processed("skipped") == 1 and reader.processed("applied") == 2
    (line,) = [r.getMessage() for r in caplog.records]
    assert "renamed-1" in line and "membership" in line and "'member.renamed'" in line
    assert f"{EVENTS}@0:1" in line
    assert "Secret Name" not in line and "m-1" not in line  # ids and type, never the payload


async def test_a_batch_of_unknown_event_types_only_settles_without_a_transaction(reader: Reader) -> None:
    await reader.pipeline.process(reader.records(renamed(1), renamed(2)))  # returns: the offsets are committed
    assert reader.seen == [] and reader.producer.sent == []
    assert reader.skipped() == {"member.renamed": 2}


async def test_an_unknown_event_type_in_binary_mode_is_skipped_too(reader: Reader) -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"renamed-binary"),
        ("ce_source", b"membership"),
        ("ce_type", b"member.renamed"),
        ("content-type", b"application/json"),
    ]
    await reader.pipeline.process(reader.records(b'{"member_id": "m-1"}', headers=headers))
    assert reader.skipped() == {"member.renamed": 1} and reader.producer.sent == []


async def test_a_value_with_an_unknown_type_and_no_readable_id_is_no_event_and_is_dead_lettered(
    reader: Reader,
) -> None:
    await reader.pipeline.process(reader.records(b'{"type": "member.renamed", "data": {}}'))
    (letter,) = reader.producer.sent
    assert letter.topic == f"{EVENTS}.dlq" and letter.headers["error.code"] == b"unknown_type"
    assert reader.skipped() == {}


@pytest.mark.parametrize("reader", [COMMANDS], indirect=True)
async def test_a_command_of_an_unknown_type_is_still_dead_lettered(reader: Reader) -> None:
    await reader.pipeline.process(reader.records(command("member.teleport", {"member_id": "m-1"}, id="tp")))
    (letter,) = reader.producer.sent
    assert letter.topic == f"{COMMANDS}.dlq" and letter.headers["error.code"] == b"unknown_type"
    assert reader.skipped() == {} and reader.processed("dead_lettered") == 1


async def test_types_from_the_wire_make_a_bounded_number_of_series(reader: Reader) -> None:
    many = MAX_SKIPPED_TYPES + 15
    types = [f"type-{n:03}-" + "x" * 100 for n in range(many)]  # 108 characters: the envelope allows 128
    await reader.pipeline.process(reader.records(*(renamed(n, t) for n, t in enumerate(types)), renamed(99, types[0])))
    skipped = reader.skipped()
    assert len(skipped) == MAX_SKIPPED_TYPES + 1 and all(len(label) <= MAX_TYPE_LABEL for label in skipped)
    assert skipped[types[0][:MAX_TYPE_LABEL]] == 2  # the first seen keep their own series
    assert skipped[OTHER] == many - MAX_SKIPPED_TYPES
    assert sum(skipped.values()) == many + 1  # nothing uncounted
