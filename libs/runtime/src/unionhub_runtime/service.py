"""One service process: Kafka subscribers, outbox relay and HTTP, started and stopped together."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Response
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import AckStatus
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from . import database, kafka, outbox, readiness, retention
from .auth import Verifier, requiring
from .backoff import Backoff
from .bulk import BulkConsumer
from .deadletters import DeadLetters
from .holding import NO_LANES, Holding, LanesOf, Provides, aggregate_lanes, count_held
from .http import Alive, Readiness
from .lag import LagMonitor
from .logs import describe_error
from .metrics import RuntimeMetrics
from .migrations import RUNTIME_HISTORY, RUNTIME_VERSION_TABLE
from .offsets import BackgroundCommits, after
from .outbox import OutboxRelay
from .pipeline import Decoder, Pipeline, PipelineConfig
from .retention import Prunable
from .scopes import ScopeFactory, encode_emit
from .settings import ServiceSettings
from .shutdown import cancelled, stop_in_order
from .tables import RuntimeTables
from .timers import Clock, Timer, TimerRunner, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    topic: str
    scope: ScopeFactory
    rejects: bool  # True for command topics: rule violations publish command.rejected
    max_records: int | None = None  # records per batch, when not the service's setting
    # A high-volume stream whose scope (a `BulkScope`) deduplicates by its own key: no inbox
    # row and no span per record (see PipelineConfig).
    bulk: bool = False
    decoder: Decoder | None = None  # when not the contract's `decode` (a faster one)
    # Commands: what a held command keeps later ones from overtaking (default: its aggregate).
    lanes: LanesOf | None = None


@dataclass
class ServiceDefinition:
    name: str
    settings: ServiceSettings
    tables: RuntimeTables
    events_topic: str
    subscriptions: Sequence[Subscription]
    asyncapi: dict[str, Any]
    routers: Sequence[APIRouter] = ()
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # Business gauges read from the database (so every instance reports the same truth).
    gauges: Sequence[Callable[[AsyncSession], Awaitable[None]]] = ()
    timers: Sequence[Timer] = ()
    # The prerequisite keys an event provides (`unionhub_runtime.holding`); None: no holding.
    provides: Provides | None = None
    # Deduplication sets of the service's own, pruned like the inbox (`unionhub_runtime.retention`).
    prunable: Sequence[Prunable] = ()
    # The service's migration history: not ready until the database is at its head (the
    # runtime's history is always required). The CLI sets it when a definition does not.
    migrations: Path | None = None


class Service:
    """Wires the shared plumbing around a service's handlers (the composition root's helper)."""

    def __init__(
        self, definition: ServiceDefinition, engine: AsyncEngine | None = None, clock: Clock = utc_now
    ) -> None:
        self.definition = definition
        settings = definition.settings
        self.name = definition.name
        self.verifier = Verifier(settings.auth, audience=definition.name)  # refuses to build without keys
        self.engine = engine or database.create_engine(settings.database_url, timeouts=settings.database_timeouts)
        self.sessions = database.session_factory(self.engine)
        self.write_lock = database.write_lock(self.engine)
        self.metrics = RuntimeMetrics(definition.registry, definition.name)
        self._client_id = client_id = f"{settings.kafka.client_id_prefix}-{definition.name}"
        self._producer: AIOKafkaProducer | None = None
        self.broker = kafka.create_broker(
            settings.kafka,
            client_id=client_id,
            middlewares=[
                KafkaPrometheusMiddleware(registry=definition.registry, app_name=definition.name),
            ],
        )
        self.relay = OutboxRelay(
            sessions=self.sessions,
            tables=definition.tables,
            metrics=self.metrics,
            poll_seconds=settings.outbox_poll_seconds,
            write_lock=self.write_lock,
        )
        self.clock = clock
        self.timers = TimerRunner(
            timers=definition.timers,
            sessions=self.sessions,
            tables=definition.tables,
            events_topic=self.physical(definition.events_topic),
            encode=lambda emit: encode_emit(emit, source=definition.name, correlation_id=None),
            on_commit=self.relay.notify,
            clock=clock,
            write_lock=self.write_lock,
        )
        self.holding = (
            None
            if definition.provides is None
            else Holding(
                definition.tables,
                hold_seconds=settings.hold.hold_seconds,
                provides=definition.provides,
                metrics=self.metrics,
                clock=clock,
                first_retry_seconds=settings.hold.hold_check_seconds,
                recheck_seconds=max(60.0, 10 * settings.hold.hold_check_seconds),
            )
        )
        self._pipelines_healthy = True
        self._tasks: list[asyncio.Task[None]] = []  # the periodic jobs: pruning, gauges, held commands, probes
        self._starting: asyncio.Task[None] | None = None  # `start` run in the background (`asgi`)
        self._started = False
        self.start_failure: BaseException | None = None
        self.schema = readiness.SchemaCheck(self.engine)
        self.schema.require(RUNTIME_HISTORY, RUNTIME_VERSION_TABLE)
        if definition.migrations is not None:
            self.requires_schema(definition.migrations)
        self.kafka_outage = readiness.Outage(readiness.KAFKA_GRACE_SECONDS)
        self._traced = KafkaRouter(middlewares=[KafkaTelemetryMiddleware()])
        self._bulk: list[BulkConsumer] = []  # bulk streams, consumed outside FastStream
        self._commits: list[BackgroundCommits] = []  # one per subscription run by FastStream
        self._stopping_consumers = False
        self.pipelines = [self._subscribe(s) for s in definition.subscriptions]
        self.broker.include_router(self._traced)
        self.lag = LagMonitor(
            settings.kafka,
            [(self.physical(s.topic), self.group_of(s)) for s in definition.subscriptions],
            self.metrics.consumer_lag,
            self.metrics.consumer_lag_seconds,
            settings.lag_refresh_seconds,
        )

    def _subscribe(self, subscription: Subscription) -> Pipeline:
        settings = self.definition.settings
        pipeline = Pipeline(
            PipelineConfig(
                consumer=subscription.topic,
                topic=subscription.topic,
                events_topic=self.physical(self.definition.events_topic),
                source=self.name,
                rejects=subscription.rejects,
                handler_attempts=settings.handler_attempts,
                max_backoff_seconds=settings.retry_max_backoff_seconds,
                bulk=subscription.bulk,
            ),
            scope=subscription.scope,
            sessions=self.sessions,
            tables=self.definition.tables,
            dead_letters=DeadLetters(lambda: self.producer, self.group_of(subscription)),
            metrics=self.metrics,
            on_commit=self.relay.notify,
            on_health=self._set_pipeline_health,
            write_lock=self.write_lock,
            holding=None if subscription.bulk else self.holding,
            decoder=subscription.decoder,
        )
        if self.holding is not None and not subscription.bulk:
            lanes = subscription.lanes or (
                aggregate_lanes(subscription.topic) if subscription.rejects else (lambda _event: NO_LANES)
            )
            self.holding.register(pipeline, lanes)

        max_records = subscription.max_records or settings.batch_max_records
        if subscription.bulk:
            self._bulk.append(
                BulkConsumer(
                    settings,
                    topic=self.physical(subscription.topic),
                    group=self.group_of(subscription),
                    client_id=self._client_id,
                    pipeline=pipeline,
                    max_records=max_records,
                    retry=lambda start: _retry_until_started(start, what=f"Kafka consumer of {subscription.topic}"),
                )
            )
            return pipeline

        commits = BackgroundCommits(subscription.topic)
        self._commits.append(commits)

        context = self.broker.context

        # The message is taken from FastStream's context here, not as an argument: its
        # dependency injection resolves a context argument with a plain function, which it
        # runs in a worker thread, and the hand-over and back cost each batch two thread
        # wake-ups (milliseconds of latency on busy cores).
        async def consume(_: Any) -> None:
            message: KafkaMessage = context.get_local("message")
            records = message.raw_message
            batch = records if isinstance(records, tuple) else (records,)
            await pipeline.process(batch)
            # Its offsets are committed in the background, not by FastStream's acknowledgement,
            # which would wait for the broker before the next batch (offsets.py). A failure
            # still rewinds the batch (NACK_ON_ERROR). On stop, what was submitted before is
            # waited for (for a few seconds), and so is the commit of a batch that finishes
            # before FastStream stops its consumer; a later one is read again (the inbox knows it).
            commits.submit(cast(AIOKafkaConsumer, message.consumer), after(batch))
            message.committed = AckStatus.ACKED
            if self._stopping_consumers:
                await commits.flush()

        self._traced.subscriber(
            self.physical(subscription.topic),
            group_id=self.group_of(subscription),
            batch=True,
            max_records=max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
            auto_offset_reset=settings.auto_offset_reset,
            # Offsets are committed after the batch is applied (by `consume`): at-least-once,
            # deduplicated by the inbox. An unexpected error rewinds to the batch instead of skipping it.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_no_decoding,
            parser=_tolerant_headers,
        )(consume)
        return pipeline

    def requires_schema(self, migrations: Path) -> None:
        """Not ready until the database is at the head of the history at `migrations`."""
        self.schema.require(migrations, "alembic_version")

    def group_of(self, subscription: Subscription) -> str:
        """The consumer group reading `subscription` (prefix included)."""
        settings = self.definition.settings
        return self.physical(f"{settings.consumer_group}.{subscription.topic}")

    def physical(self, topic: str) -> str:
        """The name of contract topic (or group) `topic` on the cluster: prefix included."""
        return self.definition.settings.kafka.topic_prefix + topic

    async def refresh_gauges(self) -> None:
        """Reads the business gauges from the database once."""
        async with self.sessions() as session:
            await session.connection(execution_options={"readonly": True})
            for refresh in self.definition.gauges:
                await refresh(session)

    async def prune(self) -> dict[str, int]:
        """Deletes the inbox and dedupe rows no redelivery can bring back, and published outbox
        rows past their retention; rows deleted by table."""
        settings, tables = self.definition.settings, self.definition.tables
        pruned = {}
        for prunable in (
            Prunable(tables.inbox, "received_at"),
            *self.definition.prunable,
            Prunable(tables.outbox, "published_at", settings.outbox_retention_seconds),
        ):
            keep = settings.dedupe_keep_seconds if prunable.keep_seconds is None else prunable.keep_seconds
            before = datetime.now(UTC) - timedelta(seconds=keep)
            pruned[prunable.table.name] = await retention.prune(self.sessions, self.write_lock, prunable, before)
            self.metrics.pruned.labels(prunable.table.name).inc(pruned[prunable.table.name])
        return pruned

    @staticmethod
    async def _repeat(job: Callable[[], Awaitable[object]], every_seconds: float, what: str) -> None:
        while True:
            try:
                await job()
            except Exception as exc:
                log.warning("%s failed: %s", what, describe_error(exc))
            await asyncio.sleep(every_seconds)

    async def retry_held(self) -> int:
        """One round of the held-commands timer (`Holding.retry_round`), then the count of
        what is left. Returns how many events it published."""
        assert self.holding is not None
        events_topic = self.physical(self.definition.events_topic)

        async def write(session: AsyncSession, outgoing: list[outbox.Pending]) -> None:
            await outbox.write(session, self.definition.tables, events_topic, outgoing)

        published = await self.holding.retry_round(self.sessions, self.write_lock, write, self.relay.notify)
        async with self.sessions() as session:
            counts = await count_held(session, self.definition.tables)
        self.metrics.held_now.clear()
        for (consumer, waiting_for), n in counts.items():
            self.metrics.held_now.labels(consumer, waiting_for).set(n)
        return published

    def _set_pipeline_health(self, healthy: bool) -> None:
        self._pipelines_healthy = healthy

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "the producer exists once the service started"
        return self._producer

    async def start(self) -> None:
        await self._wait_for_schema()
        # aiokafka binds its clients to the running loop: create the producer here.
        self._producer = kafka.create_producer(self.definition.settings.kafka, client_id=self._client_id)
        await _retry_until_started(self._producer.start, what="Kafka producer")
        self.relay.start(self._producer)
        await self.broker.start()
        for bulk in self._bulk:
            await bulk.start()
        self.timers.start()
        self.lag.start()
        settings = self.definition.settings
        self._tasks = [
            asyncio.create_task(self._repeat(self.prune, settings.prune_every_seconds, "pruning"), name="pruning")
        ]
        if self.definition.gauges:
            self._tasks.append(
                asyncio.create_task(
                    self._repeat(self.refresh_gauges, settings.metrics_refresh_seconds, "refreshing business gauges"),
                    name="gauges",
                )
            )
        if self.holding is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._repeat(self.retry_held, settings.hold.hold_check_seconds, "retrying held commands"),
                    name="held-commands",
                )
            )
        self.kafka_outage.observe(True)
        self._tasks.append(
            asyncio.create_task(
                readiness.watch(
                    lambda: self.broker.ping(timeout=readiness.KAFKA_PROBE_TIMEOUT_SECONDS),
                    self.kafka_outage,
                    readiness.KAFKA_PROBE_EVERY_SECONDS,
                ),
                name="kafka-probe",
            )
        )
        self._started = True
        log.info("%s started", self.name)

    async def _wait_for_schema(self) -> None:
        """Consumers, relay and timers write tables a migration may still be adding or
        relaxing (old code on a new schema works; new code on the old one may fail as no
        transient error does, a NOT NULL column not yet relaxed): none starts before the
        database is at the head this image knows. Commands wait in Kafka meanwhile."""
        backoff = Backoff(0.5, 10.0)
        while not await self.schema.at_head():
            log.warning("%s waits for its database schema to reach head (run `migrate`)", self.name)
            await backoff.sleep()

    def start_in_background(self, on_failure: Callable[[], None] = lambda: None) -> None:
        """Runs `start` as a task, so HTTP answers while Kafka connects (`/readyz` says not
        ready until it is done). A start that fails is logged and kept in `start_failure`,
        then `on_failure` is called (the CLI ends the process with an error)."""

        async def start() -> None:
            try:
                await self.start()
            except Exception as exc:
                self.start_failure = exc
                log.critical("%s failed to start: %s", self.name, describe_error(exc), exc_info=exc)
                on_failure()

        self._starting = asyncio.create_task(start(), name="start")

    async def stop(self) -> None:
        """Stops within `shutdown_seconds`, whatever Kafka or the database answer, started
        or not: a start still under way is cancelled first."""
        self._started = False
        await stop_in_order(
            [
                ("start", self._cancel_start),
                ("timers", self.timers.stop),
                ("lag monitor", self.lag.stop),
                ("background tasks", self._cancel_tasks),
                ("consumers", self._stop_consumers),
                ("outbox relay", self.relay.stop),
                ("producer", self._stop_producer),
                ("database pool", self.engine.dispose),
            ],
            self.definition.settings.shutdown_seconds,
        )

    async def _stop_consumers(self) -> None:
        # A batch finishing from now on waits for its commit; those before are waited for here.
        self._stopping_consumers = True
        try:
            await asyncio.gather(*(commits.flush() for commits in self._commits))  # bounded
        finally:
            try:
                await asyncio.gather(*(bulk.stop() for bulk in self._bulk), self.broker.stop())
            finally:
                self._stopping_consumers = False
                await asyncio.gather(*(commits.close() for commits in self._commits))

    async def _cancel_start(self) -> None:
        if self._starting is not None:
            await cancelled(self._starting)
            self._starting = None

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _stop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def ready(self) -> dict[str, bool]:
        """What `/readyz` checks (`unionhub_runtime.readiness`): the database answers, its
        schema is at head, the service started (its consumers connected to Kafka) and Kafka
        has not been failing for `KAFKA_GRACE_SECONDS`, the consumers are not stuck."""
        db_ok = await database.ping(self.engine)
        started = self._started
        checks = {
            "database": db_ok,
            "schema": await self.schema.at_head() if db_ok else self.schema.reached,
            "kafka": started and not self.kafka_outage.failing,
            "consumers": started and self._pipelines_healthy and all(bulk.healthy for bulk in self._bulk),
        }
        self.metrics.ready.set(1 if all(checks.values()) else 0)
        return checks

    def asgi(self, *, on_start_failure: Callable[[], None] = lambda: None) -> FastAPI:
        """The HTTP side: health, readiness, metrics, AsyncAPI and the service's read API.
        It serves at once; the service starts in the background (`start_in_background`)."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.start_in_background(on_start_failure)
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title=f"{self.name} service", lifespan=lifespan)
        app.state.service = self
        app.state.verifier = self.verifier
        app.include_router(self.operations_router())
        for router in self.definition.routers:  # the read APIs: a token with <service>:read
            app.include_router(router, dependencies=[Depends(requiring(f"{self.name}:read"))])
        return app

    def operations_router(self) -> APIRouter:
        router = APIRouter(tags=["operations"])

        @router.get("/healthz")
        async def healthz() -> Alive:
            return Alive()

        @router.get("/readyz", responses={503: {"model": Readiness, "description": "a check fails"}})
        async def readyz(response: Response) -> Readiness:
            checks = await self.ready()
            ok = all(checks.values())
            response.status_code = 200 if ok else 503
            return Readiness(status="ready" if ok else "not ready", checks=checks)

        @router.get("/metrics")
        async def metrics() -> Response:
            return Response(generate_latest(self.definition.registry), media_type=CONTENT_TYPE_LATEST)

        @router.get("/asyncapi")
        async def asyncapi() -> dict[str, Any]:
            return self.definition.asyncapi

        return router


async def _tolerant_headers(records: Any, parse: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's parsing, for records whose header values are not all UTF-8 too (FastStream
    decodes them strictly: one such record failed its batch again and again, forever). It
    sees such values as empty; the pipeline still gets the records as they are (a dead
    letter is an unchanged copy)."""
    try:
        return await parse(records)
    except UnicodeDecodeError:
        batch = records if isinstance(records, tuple) else (records,)
        readable = tuple(
            dataclasses.replace(r, headers=[(k, v if _utf8(v) else b"") for k, v in r.headers]) for r in batch
        )
        message = await parse(readable if isinstance(records, tuple) else readable[0])
        message.raw_message = records
        return message


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


async def _no_decoding(message: KafkaMessage) -> Any:
    # The pipeline decodes and validates each record itself (dead letters need the raw bytes).
    return None


async def _retry_until_started(start: Any, *, what: str, attempts: int = 30) -> None:
    backoff = Backoff(0.2, 2.0)
    for attempt in range(1, attempts + 1):
        try:
            await start()
            return
        except (KafkaError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning("%s not reachable (%s), attempt %d/%d", what, describe_error(exc), attempt, attempts)
            await backoff.sleep()
