"""The benchmark scenarios (five by default, a sixth on request). Each measures the project and its baselines in the same run
and returns rows for the table: (scenario, variant, figure, unit, ratio to the raw ceiling
or to the baseline named in the row, goal)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from unionhub_contracts import TOPICS
from unionhub_runtime.kafka import ensure_topics
from unionhub_runtime.settings import KafkaSettings

from . import load, streams
from .infra import ServiceProcess, database, migrate, pg_value, service
from .measure import EventWatch, naive, percentile, progress, raw_ceiling, watch_total


@dataclass
class Row:
    scenario: str
    variant: str
    value: float
    unit: str
    ratio: float | None = None  # to the row's reference
    reference: str = ""
    goal: str = ""
    met: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    bootstrap: str
    workdir: Path
    quick: bool

    @property
    def naive_seconds(self) -> float:
        return 5.0 if self.quick else 20.0

    def fresh_prefix(self) -> str:
        prefix = f"b{uuid.uuid4().hex[:8]}."
        asyncio.run(ensure_topics(KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=prefix), TOPICS))
        return prefix


INGESTED = "evaluation_work_items_ingested_total"
ENROLLED = ("unionhub_commands_total", {"type": "member.enroll", "outcome": "applied"})


def work_score_ingestion(ctx: Context, databases: list[str]) -> list[Row]:
    n = 60_000 if ctx.quick else 600_000
    naive_n = 3_000 if ctx.quick else 20_000
    prefix = ctx.fresh_prefix()
    topic = prefix + "evaluation.work-scores"
    records = load.work_scores(n)
    asyncio.run(load.produce(ctx.bootstrap, topic, records))
    raw_seconds = asyncio.run(raw_ceiling(ctx.bootstrap, topic, n))
    raw_rate = n / raw_seconds
    rows = [Row("1 work-score ingestion", "raw aiokafka consumer (ceiling)", raw_rate, "items/s")]
    peer_rows = _kafka_streams_peer(ctx, topic, records, raw_rate)
    rows += peer_rows
    best_peer = max(peer_rows, key=lambda r: r.value)
    for kind in databases:
        with database(kind, ctx.workdir) as url:
            naive_rate = naive(
                "work",
                bootstrap=ctx.bootstrap,
                topic=topic,
                contract_topic="evaluation.work-scores",
                count=naive_n,
                database_url=url,
                seconds=ctx.naive_seconds,
            )
        rows.append(
            Row(
                "1 work-score ingestion",
                f"naive FastStream, txn per message ({kind})",
                naive_rate,
                "items/s",
                naive_rate / raw_rate,
                "raw",
            )
        )
        with database(kind, ctx.workdir) as url:
            migrate("evaluation", url)
            # A group of its own per database: each run reads the whole topic.
            with service(
                "evaluation",
                bootstrap=ctx.bootstrap,
                prefix=prefix,
                database_url=url,
                workdir=ctx.workdir,
                consumer_group=f"evaluation-{kind}",
            ) as evaluation:
                seconds, counted = progress(evaluation, INGESTED, n)
        rate = counted / seconds
        rows.append(
            Row(
                "1 work-score ingestion",
                f"project ({kind})",
                rate,
                "items/s",
                rate / raw_rate,
                "raw",
                ">= 100,000 items/s",
                rate >= 100_000,
            )
        )
        rows.append(
            Row(
                "1 work-score ingestion",
                f"project ({kind}) vs raw ceiling",
                rate,
                "items/s",
                rate / raw_rate,
                "raw",
                ">= 0.4 x raw",
                rate / raw_rate >= 0.4,
            )
        )
        rows.append(
            Row(
                "1 work-score ingestion",
                f"project ({kind}) vs best Kafka Streams",
                rate,
                "items/s",
                rate / best_peer.value,
                best_peer.variant,
                ">= 2 x Kafka Streams",
                rate >= 2 * best_peer.value,
            )
        )
    return rows


def _kafka_streams_peer(ctx: Context, topic: str, records: list[load.Record], raw_rate: float) -> list[Row]:
    """What a Java engineer would build instead (bench/streams/), on the same topic, in the same
    run: at-least-once and exactly-once v2, one and two stream threads (the quick run: one)."""
    classpath = streams.build()
    items, score_milli = streams.totals(records)
    variants = (
        [("at_least_once", 1)]
        if ctx.quick
        else [(guarantee, threads) for guarantee in streams.GUARANTEES for threads in (1, 2)]
    )
    rows = []
    for guarantee, threads in variants:
        run = streams.run(classpath, ctx.bootstrap, topic, items, guarantee, threads, ctx.workdir)
        if (run.counted, run.items, run.score_milli) != (items, items, score_milli):
            raise RuntimeError(
                f"Kafka Streams peer miscounted ({guarantee}, {threads} threads): counted "
                f"{run.counted} items, stored {run.items} summing {run.score_milli}; the generator "
                f"made {items} summing {score_milli}"
            )
        rows.append(
            Row(
                "1 work-score ingestion",
                f"Kafka Streams peer ({streams.GUARANTEES[guarantee]}, {threads} thread{'s' * (threads > 1)})",
                run.rate,
                "items/s",
                run.rate / raw_rate,
                "raw",
            )
        )
    return rows


async def _register_unions(ctx: Context, prefix: str, run: str, unions: int) -> None:
    commands = load.union_commands(run, unions)
    async with EventWatch(ctx.bootstrap, prefix + "membership.events", "union.registered") as watch:
        # Keys spread over partitions: a parent must be registered before its children are sent.
        for wave in (commands[:1], commands[1:2], commands[2:]):
            expected = len(watch.answered) + len(wave)  # before: answers may come before `produce` returns
            await load.produce(ctx.bootstrap, prefix + "membership.commands", wave)
            await watch.wait_for(expected)


def command_throughput(ctx: Context) -> list[Row]:
    """The project with one membership instance and with two (the deployment's replicas, each
    with a process and a core of its own: Python runs one thread of Python at a time), then
    the naive baseline; every variant on a database and topics of its own."""
    n = 20_000 if ctx.quick else 100_000
    naive_n = 2_000 if ctx.quick else 10_000
    run, unions = "r1-", 101
    projects = {instances: _commands_project(ctx, instances, n, run, unions) for instances in (1, 2)}
    with database("postgresql", ctx.workdir) as url:
        naive_topic = ctx.fresh_prefix() + "membership.commands"
        asyncio.run(load.produce(ctx.bootstrap, naive_topic, load.enrolments(run, naive_n, unions)))
        naive_rate = naive(
            "enroll",
            bootstrap=ctx.bootstrap,
            topic=naive_topic,
            contract_topic="membership.commands",
            count=naive_n,
            database_url=url,
            seconds=ctx.naive_seconds,
        )
    name = "2 commands (PostgreSQL)"
    fleets = {instances: "" if instances == 1 else f", membership x{instances}" for instances in projects}
    rows = [Row(name, "naive FastStream, txn per command", naive_rate, "commands/s")]
    rows += [
        Row(
            name,
            f"project: Fengtai 15,632 enrolments, produce → last event{fleets[i]}",
            seconds,
            "s",
            goal="< 3 s",
            met=seconds < 3,
        )
        for i, (seconds, _) in projects.items()
    ]
    rows += [
        Row(
            name,
            f"project: member.enroll with inbox + outbox{fleets[i]}",
            rate,
            "commands/s",
            rate / naive_rate,
            "naive",
            ">= 10,000 commands/s",
            rate >= 10_000,
        )
        for i, (_, rate) in projects.items()
    ]
    return rows


def _commands_project(ctx: Context, instances: int, n: int, run: str, unions: int) -> tuple[float, float]:
    """Membership as `instances` processes sharing one database and consumer group: seconds
    from the first produce of Fengtai's year of enrolments (15,632) to its last event read
    back, then the rate on a backlog of `n` more."""
    fengtai = 15_632
    prefix = ctx.fresh_prefix()
    with database("postgresql", ctx.workdir) as url, ExitStack() as stack:
        migrate("membership", url)
        fleet = _fleet(stack, ctx, "membership", instances, prefix=prefix, database_url=url)
        asyncio.run(_register_unions(ctx, prefix, run, unions))
        seconds = asyncio.run(_produce_and_await(ctx, prefix, load.enrolments(run, fengtai, unions)))

        def enrolled() -> float:
            return _fleet_total(fleet, ENROLLED[0], **ENROLLED[1])

        before = enrolled()
        asyncio.run(
            load.produce(ctx.bootstrap, prefix + "membership.commands", load.enrolments(run, n, unions, start=fengtai))
        )
        backlog_seconds, counted = watch_total(
            enrolled, before + n, poll=0.05, what=f"membership x{instances}: {ENROLLED[0]}"
        )
    return seconds, counted / backlog_seconds


def _fleet(
    stack: ExitStack, ctx: Context, name: str, instances: int, *, prefix: str, database_url: str
) -> list[ServiceProcess]:
    """`instances` processes of service `name` on one database and consumer group, every one
    joined before the load arrives, so that they share the topic from the start."""
    fleet = [
        stack.enter_context(
            service(name, bootstrap=ctx.bootstrap, prefix=prefix, database_url=database_url, workdir=ctx.workdir)
        )
        for _ in range(instances)
    ]
    if instances > 1:
        time.sleep(5)  # the group settles its assignment (a member rejoins at its next heartbeat)
    return fleet


def _fleet_total(fleet: list[ServiceProcess], metric: str, **labels: str) -> float:
    return sum(p.metric(metric, **labels) for p in fleet)


async def _produce_and_await(ctx: Context, prefix: str, records: list[load.Record]) -> float:
    async with EventWatch(ctx.bootstrap, prefix + "membership.events", "member.enrolled") as watch:
        started = time.perf_counter()
        await load.produce(ctx.bootstrap, prefix + "membership.commands", records)
        await watch.wait_for(len(records))
        return max(watch.answered.values()) - started


def latency(ctx: Context) -> list[Row]:
    rate, seconds = 500, (10 if ctx.quick else 60)
    prefix, run, unions = ctx.fresh_prefix(), "lat-", 20
    with database("postgresql", ctx.workdir) as url:
        migrate("membership", url)
        with service("membership", bootstrap=ctx.bootstrap, prefix=prefix, database_url=url, workdir=ctx.workdir):
            asyncio.run(_register_unions(ctx, prefix, run, unions))
            latencies, parts = asyncio.run(_steady(ctx, prefix, load.enrolments(run, rate * seconds, unions), rate))
    name = "3 latency at 500 commands/s (PostgreSQL)"
    rows = [Row(name, f"p{q}", percentile(latencies, q / 100) * 1000, "ms") for q in (50, 95, 99)]
    rows[-1].goal, rows[-1].met = "p99 < 50 ms", rows[-1].value < 50
    rows.append(Row(name, "max", max(latencies) * 1000, "ms"))
    # Where the time goes (wall clocks of one machine, the record's to the millisecond).
    rows += [Row(name, f"p50 {part}", percentile(spans, 0.5) * 1000, "ms") for part, spans in parts.items()]
    return rows


async def _steady(
    ctx: Context, prefix: str, records: list[load.Record], rate: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Sends `records` at `rate` a second (a 10 ms tick); returns each command's latency and
    its parts: sent until handled (fetched, queued, applied), handled until appended by the
    relay (its batch's end and commit, the relay's round), appended until read."""
    client = load.producer(ctx.bootstrap, linger_ms=0)
    await client.start()
    sent: dict[str, float] = {}
    sent_at: dict[str, float] = {}  # wall clock
    try:
        async with EventWatch(ctx.bootstrap, prefix + "membership.events", "member.enrolled") as watch:
            started, per_tick = time.perf_counter(), rate // 100
            for tick in range(0, len(records), per_tick):
                await asyncio.sleep(max(0.0, started + tick / rate - time.perf_counter()))
                for key, value in records[tick : tick + per_tick]:
                    command_id = value.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
                    sent[command_id], sent_at[command_id] = time.perf_counter(), time.time()
                    await client.send(prefix + "membership.commands", value, key=key)
            await client.flush()
            await watch.wait_for(len(records), accept=lambda c: c in sent)  # its own commands only
            parts: dict[str, list[float]] = {"sent → handled": [], "handled → appended": [], "appended → read": []}
            for command_id, at in sent_at.items():
                time_field, appended_ms, read = watch.stamps[command_id]
                made, appended = datetime.fromisoformat(time_field).timestamp(), appended_ms / 1000
                parts["sent → handled"].append(made - at)
                parts["handled → appended"].append(appended - made)
                parts["appended → read"].append(read - appended)
            return [watch.answered[c] - t for c, t in sent.items()], parts
    finally:
        await client.stop()


def footprint(ctx: Context) -> list[Row]:
    prefix, run, unions = ctx.fresh_prefix(), "fp-", 50
    n = 5_000 if ctx.quick else 20_000
    rows: list[Row] = []
    with (
        database("sqlite", ctx.workdir) as m_url,
        database("sqlite", ctx.workdir) as e_url,
        database("sqlite", ctx.workdir) as f_url,
    ):
        urls = {"membership": m_url, "evaluation": e_url, "feedback": f_url}
        for name, url in urls.items():
            migrate(name, url)
        with (
            service(
                "membership", bootstrap=ctx.bootstrap, prefix=prefix, database_url=m_url, workdir=ctx.workdir
            ) as membership,
            service(
                "evaluation", bootstrap=ctx.bootstrap, prefix=prefix, database_url=e_url, workdir=ctx.workdir
            ) as evaluation,
            service(
                "feedback", bootstrap=ctx.bootstrap, prefix=prefix, database_url=f_url, workdir=ctx.workdir
            ) as feedback,
        ):
            processes = [membership, evaluation, feedback]
            time.sleep(2)
            idle = {p.name: p.rss_mb()[0] for p in processes}
            asyncio.run(_register_unions(ctx, prefix, run, unions))
            asyncio.run(_produce_and_await(ctx, prefix, load.enrolments(run, n, unions)))
            asyncio.run(load.produce(ctx.bootstrap, prefix + "evaluation.work-scores", load.work_scores(n * 10)))
            progress(evaluation, INGESTED, n * 10)
            for p in processes:
                rows += _footprint_rows(p, idle[p.name])
    return rows


def _footprint_rows(process: ServiceProcess, idle_mb: float) -> list[Row]:
    peak = process.rss_mb()[1]
    return [
        Row(
            "4 footprint",
            f"{process.name}: start to /readyz",
            process.ready_seconds,
            "s",
            goal="< 3 s",
            met=process.ready_seconds < 3,
        ),
        Row("4 footprint", f"{process.name}: RSS idle", idle_mb, "MB"),
        Row("4 footprint", f"{process.name}: RSS peak", peak, "MB", goal="< 200 MB", met=peak < 200),
    ]


def scale_out(ctx: Context) -> list[Row]:
    n = 60_000 if ctx.quick else 400_000
    one, two = _ingestion_rate(ctx, 1, n), _ingestion_rate(ctx, 2, n)
    return [
        Row("5 scale-out (PostgreSQL)", "evaluation x1", one, "items/s"),
        Row("5 scale-out (PostgreSQL)", "evaluation x2", two, "items/s", two / one, "x1"),
    ]


def _ingestion_rate(ctx: Context, instances: int, n: int) -> float:
    prefix = ctx.fresh_prefix()
    with database("postgresql", ctx.workdir) as url, ExitStack() as stack:
        migrate("evaluation", url)
        fleet = _fleet(stack, ctx, "evaluation", instances, prefix=prefix, database_url=url)
        records = load.work_scores(n, seed=instances)
        producing = threading.Thread(
            target=lambda: asyncio.run(load.produce(ctx.bootstrap, prefix + "evaluation.work-scores", records))
        )
        producing.start()
        seconds, counted = watch_total(lambda: _fleet_total(fleet, INGESTED), n, what=f"{instances} instance(s)")
        producing.join()
    return counted / seconds


def retention_soak(ctx: Context) -> list[Row]:
    """Scenario 6 (`--only 6`, not in the default set): the inbox under steady load with a short
    retention stays near rate × retention, pruned in chunks while commands keep flowing."""
    rate, seconds, keep, every = 500, (30 if ctx.quick else 180), 20, 2
    prefix, run, unions = ctx.fresh_prefix(), "soak-", 20
    sizes: list[int] = []
    with database("postgresql", ctx.workdir) as url:
        migrate("membership", url)
        with service(
            "membership",
            bootstrap=ctx.bootstrap,
            prefix=prefix,
            database_url=url,
            workdir=ctx.workdir,
            dedupe_keep_seconds=str(keep),
            prune_every_seconds=str(every),
        ) as membership:
            asyncio.run(_register_unions(ctx, prefix, run, unions))
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(1.0):
                    sizes.append(int(asyncio.run(pg_value(url, "SELECT count(*) FROM inbox"))))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            latencies, _ = asyncio.run(_steady(ctx, prefix, load.enrolments(run, rate * seconds, unions), rate))
            stop.set()
            sampler.join()
            pruned = membership.metric("unionhub_pruned_rows_total", table="inbox")
    bound = rate * (keep + every) * 1.2  # what redelivery can still bring, a prune round and slack
    name = f"6 retention soak ({rate} commands/s, {seconds} s, keep {keep} s, PostgreSQL)"
    return [
        Row(name, "inbox rows, peak", max(sizes), "rows", goal=f"<= {bound:,.0f}", met=max(sizes) <= bound),
        Row(name, "inbox rows pruned", pruned, "rows"),
        Row(name, "latency p99 while pruning", percentile(latencies, 0.99) * 1000, "ms"),
    ]


# What retention bounds: the rows the services' prune timers delete (with their indexes and
# TOAST). The rest grows with the business itself (150,000 enrolments are 150,000 members).
_RETAINED_SIZE = """
    SELECT CAST(coalesce(sum(pg_total_relation_size(oid)), 0) AS bigint) FROM pg_class
    WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND relname IN ('inbox', 'outbox', 'work_items')"""


def growth_soak(ctx: Context) -> list[Row]:
    """Scenario 7 (`--only 7`, not in the default set): ten times the year's volume, 3,000,000
    work items and 150,000 enrolments (the quick run: a tenth), in three equal parts, with a
    retention short enough to prune during the run. Per part: evaluation's ingest rate, the
    enrolments' p99 at 500 a second meanwhile, the databases' size (of it, the tables that
    retention prunes) and the services' RSS."""
    items, commands, parts, rate = (300_000, 15_000, 3, 500) if ctx.quick else (3_000_000, 150_000, 3, 500)
    retention = {"dedupe_keep_seconds": "30", "prune_every_seconds": "5", "outbox_retention_seconds": "30"}
    prefix, run, unions = ctx.fresh_prefix(), "grow-", 50
    name = f"7 growth soak ({items:,} items, {commands:,} enrolments, retention 30 s, PostgreSQL)"
    parts_seen: list[dict[str, float]] = []
    with database("postgresql", ctx.workdir) as ev_url, database("postgresql", ctx.workdir) as ms_url:
        migrate("evaluation", ev_url)
        migrate("membership", ms_url)
        urls = (ev_url, ms_url)
        with ExitStack() as running:
            ev, ms = (
                running.enter_context(
                    service(
                        name, bootstrap=ctx.bootstrap, prefix=prefix, database_url=url, workdir=ctx.workdir, **retention
                    )
                )
                for name, url in (("evaluation", ev_url), ("membership", ms_url))
            )
            asyncio.run(_register_unions(ctx, prefix, run, unions))
            for part in range(parts):
                work = load.work_scores(items // parts, seed=part + 1, run=f"{run}{part}-")
                enrol = load.enrolments(run, commands // parts, unions, start=part * (commands // parts))
                latencies: list[float] = []
                steady = threading.Thread(
                    target=lambda enrol=enrol, latencies=latencies: latencies.extend(
                        asyncio.run(_steady(ctx, prefix, enrol, rate))[0]
                    )
                )
                target = ev.metric(INGESTED) + len(work)
                steady.start()
                producing = threading.Thread(
                    target=lambda work=work: asyncio.run(
                        load.produce(ctx.bootstrap, prefix + "evaluation.work-scores", work)
                    )
                )
                producing.start()
                seconds, counted = progress(ev, INGESTED, target)
                producing.join()
                steady.join()
                sizes = [asyncio.run(pg_value(url, "SELECT pg_database_size(current_database())")) for url in urls]
                retained = [asyncio.run(pg_value(url, _RETAINED_SIZE)) for url in urls]
                parts_seen.append(
                    {
                        "rate": counted / seconds,
                        "p99": percentile(latencies, 0.99) * 1000,
                        "db_mb": sum(sizes) / 2**20,
                        "retained_mb": sum(retained) / 2**20,
                        "rss_mb": ev.rss_mb()[0] + ms.rss_mb()[0],
                    }
                )
            pruned = sum(ev.metric("unionhub_pruned_rows_total", table=t) for t in ("inbox", "work_items", "outbox"))
    rows = []
    for when, seen in zip(("start", "middle", "end"), parts_seen, strict=True):
        rows += [
            Row(name, f"{when}: ingest rate", seen["rate"], "items/s"),
            Row(name, f"{when}: enrolment p99 at {rate}/s", seen["p99"], "ms"),
            Row(name, f"{when}: database size (both)", seen["db_mb"], "MB"),
            Row(name, f"{when}: tables pruned by retention (both)", seen["retained_mb"], "MB"),
            Row(name, f"{when}: the rest (members, worker months, …)", seen["db_mb"] - seen["retained_mb"], "MB"),
            Row(name, f"{when}: RSS (both services)", seen["rss_mb"], "MB"),
        ]
    start, end = parts_seen[0], parts_seen[-1]
    rows += [
        Row(
            name,
            "ingest rate, end vs start",
            end["rate"],
            "items/s",
            end["rate"] / start["rate"],
            "start",
            ">= 0.9 x start",
            end["rate"] >= 0.9 * start["rate"],
        ),
        Row(
            name,
            "RSS, end vs start",
            end["rss_mb"],
            "MB",
            end["rss_mb"] / start["rss_mb"],
            "start",
            "<= 1.1 x start (flat)",
            end["rss_mb"] <= 1.1 * start["rss_mb"],
        ),
        Row(
            name,
            "tables pruned by retention (inbox, outbox, work-item dedupe), end vs middle",
            end["retained_mb"],
            "MB",
            end["retained_mb"] / parts_seen[1]["retained_mb"],
            "middle",
            "<= 1.1 x middle (bounded by retention)",
            end["retained_mb"] <= 1.1 * parts_seen[1]["retained_mb"],
        ),
        Row(name, "evaluation rows pruned (inbox, work items, outbox)", pruned, "rows"),
    ]
    return rows
