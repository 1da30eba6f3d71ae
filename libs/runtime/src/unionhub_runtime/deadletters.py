"""Dead-letter topic `<topic>.dlq`: the original value, unchanged, with why it failed."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaProducer, ConsumerRecord

MAX_ERROR_MESSAGE = 1000


class DeadLetters:
    def __init__(self, producer: Callable[[], AIOKafkaProducer]) -> None:
        self._producer = producer  # the service's producer exists only once its loop runs

    async def send(self, record: ConsumerRecord[bytes, bytes], code: str, message: str) -> None:
        """Copies `record` to its topic's DLQ and waits for the broker's acknowledgement."""
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith(("error.", "original."))]
        headers += [
            ("error.code", code.encode()),
            ("error.message", message[:MAX_ERROR_MESSAGE].encode("utf-8", "replace")),
            ("original.topic", record.topic.encode()),
            ("original.partition", str(record.partition).encode()),
            ("original.offset", str(record.offset).encode()),
        ]
        await self._producer().send_and_wait(
            f"{record.topic}.dlq", value=record.value, key=record.key, headers=headers
        )
