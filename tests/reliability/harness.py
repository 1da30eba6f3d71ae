"""The fault-injection harness: membership instances as real processes on PostgreSQL, a ledger
of commands with unique ids sent with acknowledgements, and the checks every scenario ends
with: every acknowledged command applied, no effect applied twice, per-member order kept."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.engine import make_url

from tests.conftest import _free_port
from tests.support import command, wait_until_ok

UNIONS = [
    ("bj", "federation", None, None),
    ("ft", "district", "bj", "Fengtai"),
    ("u0", "grassroots", "ft", "Fengtai"),
    ("u1", "grassroots", "ft", "Fengtai"),
    ("u2", "grassroots", "ft", "Fengtai"),
]
STEPS_PER_MEMBER = 3  # enroll in u0, transfer to u1, transfer to u2: order matters
# Counters read as evidence that a fault happened (they die with the process: read before).
EVIDENCE = ("unionhub_inbox_duplicates_total", "unionhub_retries_total")


def process_state(pid: int) -> str | None:
    """The state letter of a process in /proc (R, S, T stopped, Z zombie, …); None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@dataclass
class Instance:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    scraped: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in " {"
        )

    def scrape(self) -> None:
        """Keeps the counters a scenario reads as evidence (they die with the process)."""
        with contextlib.suppress(httpx.HTTPError):
            self.scraped = {name: self.metric(name) for name in EVIDENCE}


@dataclass
class Fleet:
    """Instances of one service (membership unless told) sharing one database and group."""

    bootstrap: str
    prefix: str
    database_url: str
    workdir: Path
    instances: list[Instance] = field(default_factory=list)
    retired: list[Instance] = field(default_factory=list)
    service: str = "membership"

    def start(self, *, wait: bool = True, **env: str) -> Instance:
        port = _free_port()
        log = self.workdir / f"{self.service}-{len(self.instances) + len(self.retired)}.log"
        upper = self.service.upper()
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            f"{upper}_HTTP_PORT": str(port),
            f"{upper}_DATABASE_URL": self.database_url,
            f"{upper}_BATCH_TIMEOUT_MS": "10",
            f"{upper}_LOG_LEVEL": "WARNING",
            **env,
        }
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", self.service, "serve", "--migrate"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        instance = Instance(port, process, log)
        self.instances.append(instance)
        if wait:
            self.wait_ready(instance)
        return instance

    def wait_ready(self, instance: Instance) -> None:
        wait_until_ok(f"{instance.url}/readyz", instance.log, process=instance.process)

    def kill(self, instance: Instance, sig: int = signal.SIGKILL) -> int:
        instance.scrape()
        instance.process.send_signal(sig)
        try:
            code = instance.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            instance.process.kill()  # no process outlives its test
            instance.process.wait()
            tail = "".join(instance.log.read_text(errors="replace").splitlines(keepends=True)[-40:])
            raise AssertionError(f"{self.service} ignored signal {sig} for 60 s; its log ends:\n{tail}") from None
        finally:
            self.instances.remove(instance)
            self.retired.append(instance)
        return code

    def stop_all(self) -> None:
        for instance in list(self.instances):
            if instance.process.poll() is None:
                frozen = process_state(instance.process.pid) == "T"  # SIGTERM would wait for a SIGCONT
                self.kill(instance, signal.SIGKILL if frozen else signal.SIGTERM)

    async def group_lag(self) -> int:
        """Commands the group has not committed yet: what a restarted instance reads again."""
        from aiokafka.admin import AIOKafkaAdminClient

        from unionhub_runtime.lag import measure

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await admin.start()
        await reader.start()
        try:
            return await measure(
                admin, reader, self.prefix + "membership.commands", self.prefix + "membership.membership.commands"
            )
        finally:
            await reader.stop()
            await admin.close()

    async def handover(self) -> Handover:
        """The commands topic as the group's last instance left it, read before another starts:
        the committed offsets (where a new owner starts reading) against the inbox (what was
        applied), and the outbox rows not yet published."""
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        topic, group = self.prefix + "membership.commands", self.prefix + "membership.membership.commands"
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await admin.start()
        await reader.start()
        try:
            (described,) = await admin.describe_topics([topic])
            partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            ends = await reader.end_offsets(partitions)  # the stream goes on: records past these came later
            done = await admin.list_consumer_group_offsets(group, partitions=partitions)
            committed = {tp.partition: max(done[tp].offset, 0) if tp in done else 0 for tp in partitions}
            at: dict[str, tuple[int, int]] = {}  # command id → (partition, offset)
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
                for tp, records in (await reader.getmany(timeout_ms=500, max_records=5_000)).items():
                    for r in records:
                        if r.offset < ends[tp]:
                            at[orjson.loads(r.value)["id"]] = (tp.partition, r.offset)
        finally:
            await reader.stop()
            await admin.close()
        applied = {
            r["message_id"]
            for r in await fetch(
                self.database_url, "SELECT message_id FROM inbox WHERE consumer = 'membership.commands'"
            )
        }
        (row,) = await fetch(self.database_url, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
        unread = {i for i, (p, offset) in at.items() if offset >= committed[p]}
        return Handover(
            committed=committed,
            records=len(at),
            applied=len(applied),
            applied_uncommitted=sorted(applied & unread),
            committed_unapplied=sorted(set(at) - unread - applied),
            left=len(unread),
            unpublished=int(row["n"]),
        )

    def evidence(self, name: str) -> float:
        for instance in self.instances:
            instance.scrape()
        return sum(i.scraped.get(name, 0.0) for i in [*self.retired, *self.instances])


@dataclass(frozen=True)
class Handover:
    """What a stopped instance left its group's next owner (`Fleet.handover`)."""

    committed: dict[int, int]  # partition → the group's committed offset: a new owner reads from there
    records: int  # records on the commands topic when read
    applied: int  # inbox rows of the commands consumer
    applied_uncommitted: list[str]  # applied at or past its partition's committed offset: read twice
    committed_unapplied: list[str]  # under its partition's committed offset, not in the inbox: lost
    left: int  # records at or past the committed offsets: what the next owner reads
    unpublished: int  # outbox rows not marked published


@dataclass
class Ledger:
    """Commands with unique ids, sent with acknowledgements: what must be applied, once each."""

    members: int
    acked: set[str] = field(default_factory=set)

    def unions(self) -> list[tuple[str, bytes]]:
        return [
            (
                uid,
                command(
                    "union.register",
                    {
                        "union_id": uid,
                        "name": f"Union {uid}",
                        "level": level,
                        "parent_id": parent,
                        "district": district,
                        "kind": "independent" if level == "grassroots" else None,
                        "founded_on": "2000-01-01",
                    },
                    id=f"reg-{uid}",
                ),
            )
            for uid, level, parent, district in UNIONS
        ]

    def steps(self) -> list[tuple[str, bytes]]:
        """Member by member, in the order their commands must apply (one key per member)."""
        out = []
        for n in range(self.members):
            mid = f"m-{n:06d}"
            out.append(
                (
                    mid,
                    command(
                        "member.enroll",
                        {
                            "member_id": mid,
                            "union_id": "u0",
                            "joined_on": "2018-01-02",
                            "display_name": f"Reliable Member {n}",
                        },
                        id=f"enroll-{mid}",
                    ),
                )
            )
        for step, union in ((1, "u1"), (2, "u2")):
            for n in range(self.members):
                mid = f"m-{n:06d}"
                out.append(
                    (
                        mid,
                        command(
                            "member.transfer",
                            {"member_id": mid, "to_union_id": union, "transferred_on": f"2018-0{step + 1}-01"},
                            id=f"transfer{step}-{mid}",
                        ),
                    )
                )
        return out

    async def send(
        self, bootstrap: str, topic: str, records: list[tuple[str, bytes]], *, chunk: int = 500, pause: float = 0.0
    ) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5, request_timeout_ms=60_000
        )
        await producer.start()
        try:
            for start in range(0, len(records), chunk):
                part = records[start : start + chunk]
                futures = [await producer.send(topic, value, key=key.encode()) for key, value in part]
                for (_, value), future in zip(part, futures, strict=True):
                    await future
                    self.acked.add(orjson.loads(value)["id"])
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await producer.stop()


async def fetch(database_url: str, sql: str) -> list[asyncpg.Record]:
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database, ssl=False
    )
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


async def settle(database_url: str, ledger: Ledger, timeout: float = 180) -> None:
    """Waits (bounded) until every acknowledged command is in the inbox and the outbox is empty."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            (row,) = await fetch(
                database_url,
                "SELECT (SELECT count(*) FROM inbox) AS applied, "
                "(SELECT count(*) FROM outbox WHERE published_at IS NULL) AS pending",
            )
            if row["applied"] >= len(ledger.acked) and row["pending"] == 0:
                return
        except (OSError, asyncpg.PostgresError):
            pass  # the database may be the fault
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout}s")
        await asyncio.sleep(0.5)


async def assert_exactly_once(database_url: str, ledger: Ledger) -> dict[str, int]:
    """Lost 0, doubled 0, order kept: the database against the ledger."""
    inbox = {r["message_id"] for r in await fetch(database_url, "SELECT message_id FROM inbox")}
    lost = ledger.acked - inbox
    assert not lost, f"{len(lost)} acknowledged commands never applied, e.g. {sorted(lost)[:3]}"
    members = await fetch(database_url, "SELECT member_id, union_id, status FROM members")
    assert len(members) == ledger.members == len({m["member_id"] for m in members})
    misplaced = [m["member_id"] for m in members if (m["union_id"], m["status"]) != ("u2", "active")]
    assert not misplaced, f"{len(misplaced)} members not where their last command put them: order broken"
    history = await fetch(database_url, "SELECT member_id, kind FROM member_history ORDER BY id")
    per_member: dict[str, list[str]] = {}
    for row in history:
        per_member.setdefault(row["member_id"], []).append(row["kind"])
    expected = ["enrolled", "transferred_out", "transferred_in", "transferred_out", "transferred_in"]
    doubled = [m for m, kinds in per_member.items() if kinds != expected]
    assert not doubled, (
        f"{len(doubled)} members with a history other than one of each step, e.g. "
        f"{doubled[:1]}: {per_member[doubled[0]] if doubled else ''}"
    )
    events = {
        r["event_type"]: r["n"]
        for r in await fetch(database_url, "SELECT event_type, count(*) AS n FROM outbox GROUP BY event_type")
    }
    assert events.get("member.enrolled") == ledger.members
    assert events.get("member.transferred") == 2 * ledger.members
    rejected = [
        orjson.loads(r["value"])["data"]["command_id"]
        for r in await fetch(database_url, "SELECT value FROM outbox WHERE event_type = 'command.rejected'")
    ]
    assert not ledger.acked & set(rejected), "a ledger command was rejected: applied out of order or twice"
    return {"applied": len(inbox), "members": len(members), "lost": 0, "doubled": 0}


async def events_on_topic(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        events = []
        while batch := await consumer.getmany(timeout_ms=2000, max_records=10_000):
            for records in batch.values():
                events.extend(orjson.loads(r.value) for r in records)
        return events
    finally:
        await consumer.stop()
