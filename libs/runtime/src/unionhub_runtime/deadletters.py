"""Dead-letter topic `<topic>.dlq`: the original value, unchanged, with why it failed."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError

from .outbox import bounded_send

MAX_ERROR_MESSAGE = 1000
# What a copy too large for the DLQ keeps of the value, for inspection; the whole record
# stays on its own topic (at original.partition/offset) for that topic's retention.
INSPECTION_BYTES = 64 * 1024


class DeadLetters:
    def __init__(self, producer: Callable[[], AIOKafkaProducer], group: str | None = None) -> None:
        self._producer = producer  # the service's producer exists only once its loop runs
        # Every service reading a topic writes its dead letters to the same `<topic>.dlq`:
        # `error.group` says whose they are (the one to replay them, whose inbox knows them).
        self._group = [("error.group", group.encode())] if group else []

    async def send(self, record: ConsumerRecord[bytes, bytes], code: str, message: str) -> None:
        """Copies `record` to its topic's DLQ and waits for the broker's acknowledgement.

        A copy over the producer's or the broker's size limit (the headers saying why add
        to a record that just fitted) is sent cut, saying so; any other failure raises."""
        kept = [(k, v) for k, v in (record.headers or ()) if not k.startswith(("error.", "original."))]
        headers = [
            ("error.code", code.encode()),
            ("error.message", message[:MAX_ERROR_MESSAGE].encode("utf-8", "replace")),
            ("original.topic", record.topic.encode()),
            ("original.partition", str(record.partition).encode()),
            ("original.offset", str(record.offset).encode()),
            *self._group,
        ]
        try:
            await self._deliver(f"{record.topic}.dlq", record.value, record.key, kept + headers)
        except MessageSizeTooLargeError:  # the record's own headers go too: they may be the bulk
            value = record.value or b""
            headers += [("original.size", str(len(value)).encode()), ("original.truncated", b"true")]
            await self._deliver(
                f"{record.topic}.dlq", value[:INSPECTION_BYTES], record.key[:1024] if record.key else None, headers
            )

    async def _deliver(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        await (await bounded_send(self._producer(), topic, value=value, key=key, headers=headers))
