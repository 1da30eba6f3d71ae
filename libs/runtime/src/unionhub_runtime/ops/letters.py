"""Dead letters as the operator sees them: where each is, why it failed, what it was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from unionhub_contracts.codec import BINARY_PREFIX

from .records import Record, partitions, read, reader, starts_at
from .target import Target

RUNTIME_HEADERS = ("error.", "original.", "unionhub.replay-of")  # written by the services and this tool


@dataclass(frozen=True)
class Identity:
    source: str
    id: str
    type: str | None


@dataclass(frozen=True)
class DeadLetter:
    topic: str  # the DLQ, as on the cluster
    partition: int
    offset: int
    at: datetime  # when it was dead-lettered
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(repr=False)

    @classmethod
    def of(cls, record: Record) -> DeadLetter:
        return cls(
            record.topic,
            record.partition,
            record.offset,
            datetime.fromtimestamp(record.timestamp / 1000, UTC),
            record.key,
            record.value or b"",
            tuple((k, v or b"") for k, v in record.headers or ()),  # Kafka allows null header values
        )

    @property
    def address(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return None

    @property
    def code(self) -> str:
        return self.header("error.code") or "unknown"

    @property
    def original(self) -> tuple[str, int, int] | None:
        topic, partition, offset = (self.header(f"original.{n}") for n in ("topic", "partition", "offset"))
        if topic is None or partition is None or offset is None:
            return None
        return topic, int(partition), int(offset)

    @property
    def group(self) -> str | None:
        """The consumer group that set it aside (None: written before the header existed)."""
        return self.header("error.group")

    @property
    def truncated(self) -> bool:
        return self.header("original.truncated") == "true"

    @property
    def replayable_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had on its own topic (binary-mode attributes, trace context)."""
        return [(k, v) for k, v in self.headers if not k.startswith(RUNTIME_HEADERS)]

    def identity(self, value: bytes | None = None) -> Identity | None:
        return identity(self.value if value is None else value, self.replayable_headers)


def identity(value: bytes, headers: Sequence[tuple[str, bytes]]) -> Identity | None:
    """The CloudEvent's source and id, where readable (structured or binary mode)."""
    attributes = {k.removeprefix(BINARY_PREFIX): v for k, v in headers if k.startswith(BINARY_PREFIX)}
    if "specversion" in attributes:
        try:
            found = {k: attributes[k].decode() for k in ("source", "id", "type") if k in attributes}
        except UnicodeDecodeError:
            return None
    else:
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        found = event if isinstance(event, dict) else {}
    source, id_, type_ = found.get("source"), found.get("id"), found.get("type")
    if not isinstance(source, str) or not isinstance(id_, str):
        return None
    return Identity(source, id_, type_ if isinstance(type_, str) else None)


@dataclass(frozen=True)
class Filters:
    topics: tuple[str, ...] = ()  # original topics, contract names; empty: all the service consumes
    codes: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    at: tuple[str, ...] = ()  # addresses "<dlq>:<partition>:<offset>": these, whatever the rest

    def keeps(self, letter: DeadLetter) -> bool:
        return (not self.codes or letter.code in self.codes) and (self.until is None or letter.at <= self.until)


async def select(target: Target, filters: Filters, limit: int | None = None) -> list[DeadLetter]:
    """The dead letters of `target`'s subscriptions that pass `filters`, oldest first per topic."""
    async with reader(target.kafka) as consumer:
        if filters.at:
            named = [await _one(consumer, *_resolve(target, address)) for address in filters.at]
            for letter in named:
                if letter.group not in (None, target.subscription(letter.topic).group):
                    raise LookupError(f"{letter.address} was set aside by {letter.group}, not by {target.name}")
            return named
        subscriptions = [target.subscription(t) for t in filters.topics] if filters.topics else target.subscriptions
        found: list[DeadLetter] = []
        for subscription in subscriptions:
            tps = await partitions(consumer, subscription.dlq)
            starts, ends = await starts_at(consumer, tps, filters.since), await consumer.end_offsets(tps)
            async for record in read(consumer, {tp: (starts[tp], ends[tp]) for tp in tps}):
                letter = DeadLetter.of(record)
                # Another service reading the same topic writes to the same DLQ: not ours.
                if letter.group in (None, subscription.group) and filters.keeps(letter):
                    found.append(letter)
                    if limit is not None and len(found) >= limit:
                        return found
        return found


async def _one(consumer: AIOKafkaConsumer, topic: str, partition: int, offset: int) -> DeadLetter:
    tp = TopicPartition(topic, partition)
    if tp not in await partitions(consumer, topic):
        raise LookupError(f"{topic} has no partition {partition}")
    first, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
    if not first <= offset < end:
        raise LookupError(f"no dead letter at {topic}:{partition}:{offset}: the partition holds {first} to {end - 1}")
    async for record in read(consumer, {tp: (offset, offset + 1)}):
        return DeadLetter.of(record)
    raise LookupError(f"no dead letter at {topic}:{partition}:{offset} (past the end, or deleted by retention)")


def _resolve(target: Target, address: str) -> tuple[str, int, int]:
    """`membership.commands.dlq:0:17` (with or without the prefix) → the cluster's name."""
    try:
        topic, partition, offset = address.rsplit(":", 2)
        return target.subscription(topic).dlq, int(partition), int(offset)
    except ValueError:
        raise ValueError(f"a dead letter's address is <dlq topic>:<partition>:<offset>, not {address!r}") from None
