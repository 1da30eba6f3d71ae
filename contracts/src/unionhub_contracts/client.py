"""A publisher for the systems that send commands (extra `unionhub-contracts[client]`).

It validates each command against the contract, builds the CloudEvent (structured mode),
sets the Kafka key the contract names, `content-type`, `correlationid` and `traceparent`,
sends with an idempotent producer (`acks=all`), and can await the services' answers: the
events whose `correlationid` and `correlationsource` name the command.

    async with CommandClient("127.0.0.1:9092", source="hr-system/fengtai") as client:
        sent = await client.send("member.enroll", {"member_id": "m-1", "union_id": "u-7",
                                                   "joined_on": "2018-03-01"})
        answer = await client.answer(sent, timeout=30)
        print(answer.type, answer.rejection)  # member.enrolled None
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from .catalogue import MESSAGES, TOPICS
from .envelope import CONTENT_TYPE

HELD = "command.held"
REJECTED = "command.rejected"


def command_topic(command_type: str) -> str:
    """The commands topic that carries `command_type`."""
    for name, types in MESSAGES.items():
        if command_type in types and not name.endswith(".events"):
            return name
    raise ValueError(f"{command_type!r} is not a command of contract v1")


def new_traceparent() -> str:
    """A W3C trace context that starts a new trace (sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class Sent:
    """A command on its way: what identifies it and where it went."""

    id: str
    source: str
    type: str
    topic: str
    key: str | None
    correlation_id: str
    sent_at: float  # time.monotonic()


@dataclass
class Answer:
    """The events that answer one command, in the order they were read."""

    events: list[dict[str, Any]] = field(default_factory=list)
    first_at: float | None = None  # time.monotonic() of the first terminal answer

    @property
    def final(self) -> bool:
        """Applied or rejected (`command.held` only says the command waits)."""
        return any(e["type"] != HELD for e in self.events)

    @property
    def type(self) -> str | None:
        return next((e["type"] for e in self.events if e["type"] != HELD), None)

    @property
    def held(self) -> dict[str, Any] | None:
        return next((e["data"] for e in self.events if e["type"] == HELD), None)

    @property
    def rejection(self) -> dict[str, Any] | None:
        return next((e["data"] for e in self.events if e["type"] == REJECTED), None)


class CommandClient:
    """Sends contract commands to Kafka as `source` and collects the answers."""

    def __init__(
        self, bootstrap_servers: str, *, source: str, topic_prefix: str = "", await_answers: bool = True, **kafka: Any
    ) -> None:
        self.source, self._prefix, self._await = source, topic_prefix, await_answers
        self._bootstrap, self._kafka = bootstrap_servers, kafka
        self.answers: dict[str, Answer] = {}  # by correlation id, for this source only
        self._arrived = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CommandClient:
        if self._await:
            events = [self._prefix + t.name for t in TOPICS if t.name.endswith(".events")]
            self._consumer = AIOKafkaConsumer(
                *events,
                bootstrap_servers=self._bootstrap,
                auto_offset_reset="latest",
                enable_auto_commit=False,
                **self._kafka,
            )
            await self._consumer.start()
            while not self._consumer.assignment():  # only answers from now on are ours
                await asyncio.sleep(0.05)
            await self._consumer.seek_to_end()
            self._reader = asyncio.create_task(self._read())
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, enable_idempotence=True, acks="all", linger_ms=5, **self._kafka
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            try:
                event = orjson.loads(record.value) if record.value else None
            except orjson.JSONDecodeError:
                continue  # not an event of the contract: not an answer either
            if not isinstance(event, dict):
                continue
            correlation = event.get("correlationid")
            if correlation is None or event.get("correlationsource", self.source) != self.source:
                continue  # another sender's answer
            answer = self.answers.setdefault(correlation, Answer())
            answer.events.append(event)
            if answer.first_at is None and event.get("type") != HELD:
                answer.first_at = time.monotonic()
            self._arrived.set()

    async def send(
        self,
        command_type: str,
        data: Mapping[str, Any] | BaseModel,
        *,
        id: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
        at: datetime | None = None,
    ) -> Sent:
        """Validates and sends one command; returns once the broker acknowledged it."""
        return await (
            await self.enqueue(command_type, data, id=id, correlation_id=correlation_id, traceparent=traceparent, at=at)
        )

    async def enqueue(
        self,
        command_type: str,
        data: Mapping[str, Any] | BaseModel,
        *,
        id: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
        at: datetime | None = None,
    ) -> asyncio.Future[Sent]:
        """Validates one command and queues it; the future resolves once the broker acknowledged
        it. Many in flight keep their order per key (idempotent producer)."""
        topic = command_topic(command_type)
        spec = MESSAGES[topic][command_type]
        model = data if isinstance(data, BaseModel) else spec.data.model_validate(dict(data), strict=False)
        payload = model.model_dump(mode="json", exclude_none=False)
        key = str(payload[spec.key]) if spec.key else None
        command_id = id or str(uuid.uuid4())
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": command_id,
            "source": self.source,
            "type": command_type,
            "time": (at or datetime.now(UTC)).isoformat(),
            "datacontenttype": "application/json",
            "data": payload,
        }
        if correlation_id is not None:
            body["correlationid"] = correlation_id
        headers = [
            ("content-type", CONTENT_TYPE.encode()),
            ("traceparent", (traceparent or new_traceparent()).encode()),
        ]
        sent = Sent(command_id, self.source, command_type, topic, key, correlation_id or command_id, time.monotonic())
        delivery = await self._producer.send(
            self._prefix + topic, orjson.dumps(body), key=key.encode() if key is not None else None, headers=headers
        )
        future: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()

        def settle(done: asyncio.Future[Any]) -> None:
            if future.done():
                return
            if done.cancelled():
                future.cancel()
            elif (error := done.exception()) is not None:
                future.set_exception(error)
            else:
                future.set_result(sent)

        delivery.add_done_callback(settle)
        return future

    async def answer(self, sent: Sent, timeout: float = 30) -> Answer:
        """The answer to `sent` once it is final (applied or rejected); TimeoutError if not in time."""
        await self.wait_all([sent], timeout)
        return self.answers[sent.correlation_id]

    async def wait_all(
        self, sent: Iterable[Sent], timeout: float = 120, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Waits until every command of `sent` has its final answer."""
        if not self._await:
            raise RuntimeError("this client was made with await_answers=False")
        waiting = {s.correlation_id for s in sent}
        total = len(waiting)
        deadline = time.monotonic() + timeout
        while True:
            self._arrived.clear()
            waiting = {c for c in waiting if c not in self.answers or not self.answers[c].final}
            if progress is not None:
                progress(total - len(waiting), total)
            if not waiting:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(waiting)} of {total} commands unanswered after {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))
