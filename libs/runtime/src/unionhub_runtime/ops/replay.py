"""Replaying dead letters to the topic they came from, once their cause is fixed.

Nothing is sent that would change an outcome behind the operator's back: a record that still
does not decode stays (it would only be dead-lettered again), one already applied (in the
service's inbox) is not sent again, and one whose key has later commands applied since it
failed is held back unless forced, because applying it now reorders that key's history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select

from unionhub_contracts import DecodeError

from ..inbox import LEGACY_SOURCE
from ..kafka import client_kwargs
from .letters import DeadLetter, identity
from .records import read, reader
from .target import Subscription, Target

REPLAY_HEADER = "unionhub.replay-of"  # where a replayed record came from, for the audit trail


@dataclass(frozen=True)
class Replay:
    letter: DeadLetter
    subscription: Subscription
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Plan:
    send: list[Replay] = field(default_factory=list)
    applied: list[DeadLetter] = field(default_factory=list)  # in the inbox already
    overtaken: list[tuple[Replay, int]] = field(default_factory=list)  # later commands of its key applied
    refused: list[tuple[DeadLetter, str]] = field(default_factory=list)  # why it cannot be replayed

    @property
    def selected(self) -> int:
        return len(self.send) + len(self.applied) + len(self.overtaken) + len(self.refused)


async def plan(
    target: Target, letters: Sequence[DeadLetter], *, value: bytes | None = None, force: bool = False
) -> Plan:
    """What replaying `letters` would do; `value` replaces the (single) letter's value."""
    if value is not None and len(letters) != 1:
        raise ValueError("a corrected value replaces exactly one dead letter: select it with --at")
    result = Plan()
    candidates: list[Replay] = []
    async with reader(target.kafka) as consumer:
        for letter in letters:
            replay = await _prepared(target, consumer, letter, value)
            if isinstance(replay, str):
                result.refused.append((letter, replay))
            elif await _applied(target, replay):
                result.applied.append(letter)
            else:
                candidates.append(replay)
        later = await _later_applied_of_same_key(target, consumer, candidates)
    for replay in candidates:
        if later.get(replay.letter.address) and not force:
            result.overtaken.append((replay, later[replay.letter.address]))
        else:
            result.send.append(replay)
    return result


async def send(target: Target, replays: Sequence[Replay]) -> int:
    """Sends each to its original topic with its key and headers; waits for every acknowledgement."""
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **client_kwargs(target.kafka))
    await producer.start()
    try:
        for replay in replays:
            await producer.send_and_wait(
                replay.subscription.physical,
                replay.value,
                key=replay.letter.key,
                headers=[*replay.headers, (REPLAY_HEADER, replay.letter.address.encode())],
            )
    finally:
        await producer.stop()
    return len(replays)


async def _prepared(
    target: Target, consumer: AIOKafkaConsumer, letter: DeadLetter, value: bytes | None
) -> Replay | str:
    original = letter.original
    if original is None:
        return "it has no original.* headers: not a dead letter of these services"
    subscription = target.subscription(original[0])
    headers = letter.replayable_headers
    if value is None and letter.truncated:  # the copy was cut: the record itself may still be there
        whole = await _original_record(consumer, *original)
        if whole is None:
            return f"its copy was cut and {original[0]}:{original[1]}:{original[2]} is past retention"
        value, headers = whole
    value = letter.value if value is None else value
    try:
        subscription.decoder(value, headers)
    except DecodeError as exc:
        return f"it still does not decode ({exc.code}: {exc.message}); fix it and replay it with --value-file"
    return Replay(letter, subscription, value, headers)


async def _original_record(
    consumer: AIOKafkaConsumer, topic: str, partition: int, offset: int
) -> tuple[bytes, list[tuple[str, bytes]]] | None:
    tp = TopicPartition(topic, partition)
    if not (await consumer.beginning_offsets([tp]))[tp] <= offset < (await consumer.end_offsets([tp]))[tp]:
        return None
    async for record in read(consumer, {tp: (offset, offset + 1)}):
        return record.value or b"", list(record.headers or ())
    return None


async def _applied(target: Target, replay: Replay) -> bool:
    """Whether the service's inbox holds the message (so the service would skip it anyway)."""
    found = identity(replay.value, replay.headers)
    if found is None or not replay.subscription.inbox:
        return False
    inbox = target.service.definition.tables.inbox.c
    async with target.service.sessions() as session:
        row = await session.scalar(
            select(inbox.message_id).where(
                inbox.consumer == replay.subscription.consumer,
                inbox.message_id == found.id,
                inbox.source.in_([found.source, LEGACY_SOURCE]),
            )
        )
    return row is not None


async def _later_applied_of_same_key(
    target: Target, consumer: AIOKafkaConsumer, replays: Sequence[Replay]
) -> dict[str, int]:
    """Per dead letter (address), how many later records of its key the service's group has
    committed since: read from its original partition between the letter and the commit."""
    by_partition: dict[tuple[Subscription, TopicPartition], list[Replay]] = defaultdict(list)
    for replay in replays:
        original = replay.letter.original
        if original is not None and replay.letter.key is not None:
            by_partition[replay.subscription, TopicPartition(original[0], original[1])].append(replay)
    counts: dict[str, int] = {}
    admin = AIOKafkaAdminClient(**client_kwargs(target.kafka))
    await admin.start()
    try:
        for (subscription, tp), waiting in by_partition.items():
            committed = await admin.list_consumer_group_offsets(subscription.group, partitions=[tp])
            upto = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0
            offsets = {r.letter.address: r.letter.original[2] for r in waiting if r.letter.original}
            keys = {r.letter.address: r.letter.key for r in waiting}
            start = max(min(offsets.values()) + 1, (await consumer.beginning_offsets([tp]))[tp])
            async for record in read(consumer, {tp: (start, upto)}):
                copy_of = dict(record.headers or ()).get(REPLAY_HEADER, b"").decode()
                for address, offset in offsets.items():
                    # A copy of this very letter, replayed before, is not a later command.
                    if record.offset > offset and record.key == keys[address] and copy_of != address:
                        counts[address] = counts.get(address, 0) + 1
    finally:
        await admin.close()
    return counts
