"""Kafka clients built from settings: the FastStream broker, the idempotent producer, and the
catalogue's topics brought to what it declares (`ensure_topics`)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faststream import security as fs_security
from faststream.kafka import KafkaBroker

from unionhub_contracts import Topic

from .settings import KafkaSettings
from .topic_configs import set_topic_configs


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
        linger_ms=0,
        max_batch_size=256 * 1024,
        max_request_size=settings.max_request_bytes,
        **client_kwargs(settings),
    )


@dataclass(frozen=True)
class TopicSpec:
    """A topic as this cluster must hold it (prefix included)."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    min_insync_replicas: int  # the catalogue's wish, held to the replicas the topic has


def topic_specs(settings: KafkaSettings, topics: Iterable[Topic]) -> list[TopicSpec]:
    """Each catalogue topic and its DLQ: never more replicas than the cluster has brokers for
    (`KAFKA_REPLICATION_FACTOR`)."""
    specs = []
    for item in topics:
        replicas = min(item.replication_factor, settings.replication_factor)
        retention = {"retention.ms": str(item.retention_ms)}
        specs.append(
            TopicSpec(settings.topic_prefix + item.name, item.partitions, replicas, retention, item.min_insync_replicas)
        )
        # A dead letter is the record unchanged plus headers saying why: its topic takes records
        # as large as the producers send, whatever the brokers' default (so a copy of a record
        # that just fitted its own topic is never refused by the broker).
        dlq = {"retention.ms": str(item.dlq_retention_ms), "max.message.bytes": str(settings.max_request_bytes)}
        specs.append(
            TopicSpec(settings.topic_prefix + item.dlq, item.dlq_partitions, replicas, dlq, item.min_insync_replicas)
        )
    return specs


def _configs(spec: TopicSpec, replicas: int) -> dict[str, str]:
    # One replica may be lost without refusing writes: never ask for all of them in sync.
    in_sync = max(1, min(spec.min_insync_replicas, replicas - 1))
    return {**spec.configs, "min.insync.replicas": str(in_sync)}


@dataclass
class TopicChanges:
    """What `ensure_topics` did, and what it left as it found it (`kept`)."""

    created: list[str] = field(default_factory=list)
    altered: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)  # config: (was, now)
    partitions: dict[str, tuple[int, int]] = field(default_factory=dict)  # (was, now)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.altered or self.partitions)


async def ensure_topics(
    settings: KafkaSettings, topics: Iterable[Topic], *, add_partitions: bool = False
) -> TopicChanges:
    """Brings the cluster to the catalogue: creates each topic (with the prefix) and its DLQ
    where missing; on existing ones sets the configs the catalogue declares. Never removes
    partitions, changes a replication factor or shortens a retention (that deletes data);
    adds the partitions the catalogue has more of only when `add_partitions` (keys move)."""
    specs = topic_specs(settings, topics)
    changes = TopicChanges()
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await _create(admin, missing)
            changes.created = [s.name for s in missing]
        present = [s for s in specs if s.name in existing]
        if present:
            await _reconcile(admin, present, changes, add_partitions)
        # A consumer that subscribes before the leaders are elected may sit on an
        # empty assignment until its next metadata refresh: wait for them here.
        if changes.created or changes.partitions:
            await _wait_for_leaders(admin, [*changes.created, *changes.partitions])
        return changes
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    new = [
        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=_configs(s, s.replication_factor))
        for s in specs
    ]
    with suppress(TopicAlreadyExistsError):  # another process was first: goal met
        response = await admin.create_topics(new)
        failed = [
            (name, code, message)
            for name, code, message in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        ]
        if failed:  # e.g. a replication factor above the brokers registered so far
            raise RuntimeError(f"creating topics failed: {failed}")


async def _reconcile(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], changes: TopicChanges, add_partitions: bool
) -> None:
    described = {}
    for topic in await admin.describe_topics([s.name for s in specs]):
        if topic["error_code"]:  # e.g. a principal without Describe on it
            raise RuntimeError(f"describing {topic['topic']} failed: error {topic['error_code']}")
        described[topic["topic"]] = topic["partitions"]
    dynamic = await _topic_overrides(admin, [s.name for s in specs])
    alter: dict[str, dict[str, str]] = {}
    for spec in specs:
        partitions = described[spec.name]
        replicas = len(partitions[0]["replicas"]) if partitions else spec.replication_factor
        if replicas < spec.replication_factor:
            changes.kept.append(
                f"{spec.name}: {replicas} replicas, {spec.replication_factor} wanted "
                "(a reassignment changes it: kafka-reassign-partitions.sh)"
            )
        if len(partitions) > spec.partitions:
            changes.kept.append(f"{spec.name}: {len(partitions)} partitions, the catalogue asks {spec.partitions}")
        elif len(partitions) < spec.partitions and add_partitions:
            changes.partitions[spec.name] = (len(partitions), spec.partitions)
        elif len(partitions) < spec.partitions:
            # A key hashes to another partition once there are more, while its older records
            # are still read on the old one, by another consumer: per-key order breaks.
            changes.kept.append(
                f"{spec.name}: {len(partitions)} partitions, the catalogue asks {spec.partitions}: not added "
                "(keys would move); add them with --add-partitions once every group's lag is 0"
            )
        current = dynamic[spec.name]
        wanted = _configs(spec, replicas)
        if _longer(current.get("retention.ms"), wanted.get("retention.ms")):
            changes.kept.append(
                f"{spec.name}: retention.ms {current['retention.ms']} kept, longer than the catalogue's "
                f"{wanted['retention.ms']} (shortening it deletes data)"
            )
            wanted["retention.ms"] = current["retention.ms"]
        differ = {k: (current.get(k), v) for k, v in wanted.items() if current.get(k) != v}
        if differ:
            changes.altered[spec.name] = differ
            alter[spec.name] = {k: v for k, (_, v) in differ.items()}
    if alter:  # only these keys: the topics' other overrides (set by hand) stay as they are
        await set_topic_configs(admin, alter)
    if changes.partitions:
        await admin.create_partitions({name: NewPartitions(now) for name, (_, now) in changes.partitions.items()})


def _longer(current: str | None, wanted: str | None) -> bool:
    """Whether retention `current` keeps records longer than `wanted` (-1: for ever)."""
    if current is None or wanted is None:
        return False
    return int(current) < 0 <= int(wanted) or int(current) > int(wanted) >= 0


# DescribeConfigs' config_source: a value set on the topic itself.
DYNAMIC_TOPIC_CONFIG = 1


async def _topic_overrides(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configs set on the topic (not inherited from the brokers)."""
    overrides: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]):
        if response.API_VERSION < 1:  # v0 has no config_source: Kafka 4 brokers answer v1 and later
            raise RuntimeError("the brokers do not say where a topic's configs come from (DescribeConfigs v0)")
        for code, message, _, name, entries in response.resources:
            if code:
                raise RuntimeError(f"describing the configs of {name} failed: {code} {message}")
            overrides[name] = {}
            for key, value, _, source, sensitive, *_ in entries:
                if source == DYNAMIC_TOPIC_CONFIG and not sensitive and value is not None:
                    overrides[name][key] = value  # (a sensitive one is unreadable, and never ours)
    return overrides


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
