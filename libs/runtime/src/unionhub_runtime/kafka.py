"""Kafka clients built from settings: the FastStream broker, the idempotent producer, topics."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import security as fs_security
from faststream.kafka import KafkaBroker

from unionhub_contracts import Topic

from .settings import KafkaSettings


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if "SSL" not in settings.security_protocol:
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options for any aiokafka client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    context = _ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "SCRAM-SHA-512"
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return kwargs


def _broker_security(settings: KafkaSettings) -> fs_security.BaseSecurity | None:
    context = _ssl_context(settings)
    use_ssl = context is not None
    if not settings.security_protocol.startswith("SASL"):
        return fs_security.BaseSecurity(ssl_context=context, use_ssl=use_ssl) if use_ssl else None
    username = settings.sasl_username or ""
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    mechanism = settings.sasl_mechanism or "SCRAM-SHA-512"
    kinds: dict[str, type[fs_security.SASLPlaintext | fs_security.SASLScram256 | fs_security.SASLScram512]] = {
        "PLAIN": fs_security.SASLPlaintext,
        "SCRAM-SHA-256": fs_security.SASLScram256,
        "SCRAM-SHA-512": fs_security.SASLScram512,
    }
    return kinds[mechanism](username, password, ssl_context=context, use_ssl=use_ssl)


def create_broker(settings: KafkaSettings, *, client_id: str, middlewares: Sequence[Any] = ()) -> KafkaBroker:
    """The FastStream broker that runs the service's subscribers."""
    return KafkaBroker(
        # A list: FastStream hands a string to aiokafka as one host, so "a:9092,b:9092" (any
        # real cluster's bootstrap) never connected.
        [server.strip() for server in settings.bootstrap_servers.split(",") if server.strip()],
        client_id=client_id,
        security=_broker_security(settings),
        enable_idempotence=True,
        # Topics and their partition counts come from the catalogue (ensure_topics), never
        # from a subscriber starting first with one partition.
        allow_auto_create_topics=False,
        middlewares=middlewares,
        # What FastStream catches around a handler (an error, a failed commit) is logged as
        # JSON by the process's handlers; its line per batch received is DEBUG, not INFO.
        logger=logging.getLogger("unionhub_runtime.faststream"),
        log_level=logging.DEBUG,
    )


def create_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    """The producer of the outbox relay and dead letters: idempotent, acks from all replicas."""
    return AIOKafkaProducer(
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=settings.max_request_bytes,
        **client_kwargs(settings),
    )


async def ensure_topics(settings: KafkaSettings, topics: Iterable[Topic]) -> list[str]:
    """Creates each topic (with the prefix) and its dead-letter topic where missing."""
    wanted: list[NewTopic] = []
    prefix = settings.topic_prefix
    for item in topics:
        wanted.append(NewTopic(prefix + item.name, item.partitions, settings.replication_factor))
        # A dead letter is the record unchanged plus headers saying why: its topic takes records
        # as large as the producers send, whatever the brokers' default (so a copy of a record
        # that just fitted its own topic is never refused by the broker).
        wanted.append(
            NewTopic(
                prefix + item.dlq,
                1,
                settings.replication_factor,
                topic_configs={"max.message.bytes": str(settings.max_request_bytes)},
            )
        )
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with suppress(TopicAlreadyExistsError):  # another process was first: goal met
                response = await admin.create_topics(missing)
                failed = [
                    (name, code, message)
                    for name, code, message in response.topic_errors
                    if code not in (0, TopicAlreadyExistsError.errno)
                ]
                if failed:  # e.g. a replication factor above the brokers registered so far
                    raise RuntimeError(f"creating topics failed: {failed}")
            # A consumer that subscribes before the leaders are elected may sit on an
            # empty assignment until its next metadata refresh: wait for them here.
            await _wait_for_leaders(admin, [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        ready = all(
            topic["error_code"] == 0 and topic["partitions"] and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        )
        if ready:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout}s: {names}")
        await asyncio.sleep(0.1)
