"""Replaying dead letters to the topic they came from, once their cause is fixed.

Nothing is sent that would change an outcome behind the operator's back: a record that still
does not decode stays (it would only be dead-lettered again), one already applied (in the
service's inbox) is not sent again, and one whose key has later commands applied since it
failed is held back unless forced, because applying it now reorders that key's history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import select

from unionhub_contracts import DecodeError

from ..inbox import LEGACY_SOURCE
from ..kafka import client_kwargs
from .letters import DeadLetter, Filters, identity
from .letters import select as select_letters
from .records import read, reader
from .target import Subscription, Target

REPLAY_HEADER = "unionhub.replay-of"  # where a replayed record came from, for the audit trail
# A letter this close to the inbox's memory is treated as past it: a replay takes a while.
AGE_MARGIN = timedelta(days=1)


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
    held: list[tuple[Replay, str]] = field(default_factory=list)  # sent only with --force: why
    refused: list[tuple[DeadLetter, str]] = field(default_factory=list)  # why it cannot be replayed

    @property
    def selected(self) -> int:
        return len(self.send) + len(self.applied) + len(self.held) + len(self.refused)


async def plan(
    target: Target, letters: Sequence[DeadLetter], *, value: bytes | None = None, force: bool = False
) -> Plan:
    """What replaying `letters` would do; `value` replaces the (single) letter's value."""
    if value is not None and len(letters) != 1:
        raise ValueError("a corrected value replaces exactly one dead letter: select it with --at")
    result = Plan()
    candidates: list[Replay] = []
    async with reader(target.kafka) as consumer:
        # In the order they first came: replayed in it, a key's history keeps its order.
        for letter in sorted(letters, key=lambda x: x.original or (x.topic, x.partition, x.offset)):
            replay = await _prepared(target, consumer, letter, value)
            if isinstance(replay, str):
                result.refused.append((letter, replay))
            elif await _applied(target, replay):
                result.applied.append(letter)
            else:
                candidates.append(replay)
        reasons = await _reasons_to_hold(target, consumer, candidates)
    held_keys: set[tuple[str, int, bytes]] = set()
    for replay in candidates:
        lane = _lane(replay)
        reason = reasons.get(replay.letter.address)
        if reason is None and lane in held_keys:
            reason = "an earlier dead letter of its key is held back: it would overtake it"
        if reason is not None and not force:
            result.held.append((replay, reason))
            if lane is not None:
                held_keys.add(lane)
        else:
            result.send.append(replay)
    return result


def _lane(replay: Replay) -> tuple[str, int, bytes] | None:
    """Where the key's order lives: its partition, when the record had a key."""
    original = replay.letter.original
    if original is None or replay.letter.key is None:
        return None
    return original[0], original[1], replay.letter.key


async def send(target: Target, replays: Sequence[Replay]) -> int:
    """Sends each to its original topic with its key and headers; waits for every acknowledgement."""
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **client_kwargs(target.kafka))
    await producer.start()
    try:
        for replay in replays:
            original = replay.letter.original
            await producer.send_and_wait(
                replay.subscription.physical,
                replay.value,
                key=replay.letter.key,
                # The partition it came from: the sender's partitioner (librdkafka's CRC32,
                # sarama's FNV) may place a key elsewhere than aiokafka's murmur2 would.
                partition=original[1] if original else None,
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


async def _reasons_to_hold(target: Target, consumer: AIOKafkaConsumer, replays: Sequence[Replay]) -> dict[str, str]:
    """Per dead letter (address), why replaying it could change an outcome, if it could:
    records of its key after it on its partition (applied, or to be applied before a copy
    appended now), or an age past what the inbox remembers."""
    now = datetime.now(UTC)
    reasons: dict[str, str] = {}
    by_partition: dict[tuple[Subscription, TopicPartition], list[Replay]] = defaultdict(list)
    for replay in replays:
        if not replay.subscription.inbox:
            continue  # a bulk stream: deduplicated by item id, in no order
        keep = timedelta(seconds=target.service.definition.settings.dedupe_keep_seconds)
        if replay.letter.at < now - keep + AGE_MARGIN:
            reasons[replay.letter.address] = (
                f"it failed {(now - replay.letter.at).days} days ago, past the {keep.days} days the inbox "
                "remembers: a copy replayed before may have been applied and forgotten"
            )
        elif (lane := _lane(replay)) is not None:
            by_partition[replay.subscription, TopicPartition(lane[0], lane[1])].append(replay)
    for (subscription, tp), waiting in by_partition.items():
        reasons |= await _overtaken(target, consumer, subscription, tp, waiting)
    return reasons


async def _overtaken(
    target: Target, consumer: AIOKafkaConsumer, subscription: Subscription, tp: TopicPartition, replays: list[Replay]
) -> dict[str, str]:
    # Records set aside too were not applied: they do not count (one of them may be selected).
    set_aside = {x.original for x in await select_letters(target, Filters(topics=(subscription.topic,)))}
    offsets = {r.letter.address: r.letter.original[2] for r in replays if r.letter.original}
    keys = {r.letter.address: r.letter.key for r in replays}
    first, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
    reasons = {
        address: "records after it were deleted by retention: whether later commands of its key ran cannot be told"
        for address, offset in offsets.items()
        if offset + 1 < first
    }
    later: dict[str, int] = defaultdict(int)
    async for record in read(consumer, {tp: (max(min(offsets.values()) + 1, first), end)}):
        if (tp.topic, tp.partition, record.offset) in set_aside:
            continue
        copy_of = (dict(record.headers or ()).get(REPLAY_HEADER) or b"").decode()
        for address, offset in offsets.items():
            # A copy of this very letter, replayed before, is not a later command.
            if record.offset > offset and record.key == keys[address] and copy_of != address:
                later[address] += 1
    for address, n in later.items():
        reasons.setdefault(
            address,
            f"{n} later command(s) for its key were applied or are waiting to be; replaying it now would "
            "apply it after them",
        )
    return reasons
