"""The interleaving property: any interleaving of a causal feed that keeps each key's order
ends in the same state, and gives every command the same terminal answer, as the feed applied
one command at a time (contract: "Commands that arrive before what they depend on").

Both runs go through the services' real pipelines and SQLite databases, as built by their
composition roots; only Kafka is replaced, by partitions kept here (a key always on the same
one, read in order) so that hypothesis decides which partition is read next, how many records
a batch takes, when a batch is redelivered and when the held-commands timer runs.
"""

from __future__ import annotations

import random
import shutil
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from unionhub_scenario import commands as scenario

import evaluation.bootstrap
import feedback.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.pipeline import Pipeline
from unionhub_runtime.service import Service
from unionhub_runtime.settings import HoldSettings, KafkaSettings

pytestmark = pytest.mark.integration

PARTITIONS = 3
HOLD = HoldSettings(hold_seconds=600, hold_check_seconds=1)
# What only bookkeeping writes: where the runs may differ by design.
RUNTIME = {"inbox", "outbox", "held_commands", "held_lanes", "alembic_version"}
BUILDERS: dict[str, tuple[Callable[..., Service], Callable[..., Any], Path]] = {
    "membership": (membership.bootstrap.build, MembershipSettings, membership.bootstrap.MIGRATIONS),
    "evaluation": (evaluation.bootstrap.build, EvaluationSettings, evaluation.bootstrap.MIGRATIONS),
    "feedback": (feedback.bootstrap.build, FeedbackSettings, feedback.bootstrap.MIGRATIONS),
}
SHANGHAI = timezone(timedelta(hours=8))
OFFSETS = [SHANGHAI, UTC, timezone(timedelta(hours=-5))]


@dataclass(frozen=True)
class Command(scenario.Command):
    """A scenario command and the sender it comes from."""

    source: str = "tests"

    @property
    def service(self) -> str:
        return self.topic.split(".")[0]


# --- the feeds ------------------------------------------------------------------------------


def _day(n: int) -> str:
    return (date(2018, 1, 1) + timedelta(days=n)).isoformat()


@dataclass
class _Stay:
    union: str
    start: int  # day number in 2018
    end: int | None  # the day it ended, None while active


@st.composite
def causal_feeds(draw: st.DrawFn) -> list[Command]:
    """A feed in the order things happened: unions in a hierarchy, members enrolling, moving,
    leaving and coming back, cadres, homes, stations; then a campaign's ratings and opinions
    of those members, valid or not. Several senders, and ids that repeat across them."""
    feed: list[Command] = []
    numbered: dict[str, int] = {}

    def add(topic: str, type_: str, data: dict[str, Any], source: str = "hr-system/a") -> None:
        # Every sender numbers its commands from 0: the same id from two sources is two commands.
        numbered[source] = numbered.get(source, -1) + 1
        feed.append(Command(topic, type_, data, f"c-{numbered[source]}", source))

    mc, ec, fc = "membership.commands", "evaluation.commands", "feedback.commands"
    add(
        mc,
        "union.register",
        {"union_id": "fed", "name": "Federation", "level": "federation", "founded_on": "1949-01-01"},
    )
    unions: dict[str, int] = {}  # grassroots union -> day founded
    for d in range(draw(st.integers(1, 2))):
        add(
            mc,
            "union.register",
            {
                "union_id": f"d{d}",
                "name": f"District {d}",
                "level": "district",
                "parent_id": "fed",
                "district": f"D{d}",
                "founded_on": "1950-01-01",
            },
        )
        for g in range(draw(st.integers(1, 2))):
            founded = draw(st.integers(0, 20))
            unions[f"g{d}{g}"] = founded
            add(
                mc,
                "union.register",
                {
                    "union_id": f"g{d}{g}",
                    "name": f"Union {d}{g}",
                    "level": "grassroots",
                    "parent_id": f"d{d}",
                    "district": f"D{d}",
                    "kind": "independent",
                    "founded_on": _day(founded),
                },
            )
    names = sorted(unions)
    if draw(st.booleans()):  # the same id again with other data: a conflict
        add(
            mc,
            "union.register",
            {
                "union_id": names[0],
                "name": "Other",
                "level": "grassroots",
                "parent_id": "d0",
                "district": "D0",
                "kind": "joint",
                "founded_on": _day(unions[names[0]]),
            },
        )
    stays: dict[str, list[_Stay]] = {}
    cadres: dict[str, tuple[str, int]] = {}  # union -> (cadre, day appointed)
    for m in range(draw(st.integers(1, 5))):
        member, union = f"m{m}", draw(st.sampled_from(names))
        joined = unions[union] + draw(st.integers(1, 20))
        add(mc, "member.enroll", {"member_id": member, "union_id": union, "joined_on": _day(joined)}, "hr-system/b")
        stays[member] = [_Stay(union, joined, None)]
        fate = draw(st.sampled_from(["stays", "cadre", "leaves", "returns", "transfers"]))
        later = joined + draw(st.integers(3, 30))
        if fate == "cadre" and union not in cadres:
            cadres[union] = (member, joined + 1)
            add(
                mc,
                "cadre.appoint",
                {"member_id": member, "union_id": union, "role": "full_time_cadre", "appointed_on": _day(joined + 1)},
                "hr-system/b",
            )
        elif fate in ("leaves", "returns"):
            stays[member][0].end = later
            add(mc, "member.leave", {"member_id": member, "left_on": _day(later), "reason": "moved"}, "hr-system/b")
            if fate == "returns":
                again = draw(st.sampled_from(names))
                stays[member].append(_Stay(again, later + 2, None))
                add(
                    mc,
                    "member.enroll",
                    {"member_id": member, "union_id": again, "joined_on": _day(later + 2)},
                    "hr-system/b",
                )
        elif fate == "transfers" and len(names) > 1:
            target = draw(st.sampled_from([n for n in names if n != union]))
            stays[member][0].end = later
            stays[member].append(_Stay(target, later, None))
            add(
                mc,
                "member.transfer",
                {"member_id": member, "to_union_id": target, "transferred_on": _day(later)},
                "hr-system/b",
            )
    if draw(st.booleans()):  # an enrolment into a union that never comes, and what queues behind it
        add(mc, "member.enroll", {"member_id": "lost", "union_id": "nowhere", "joined_on": _day(40)}, "hr-system/b")
        add(mc, "member.leave", {"member_id": "lost", "left_on": _day(50), "reason": "moved"}, "hr-system/b")
    homes = {u: f"h-{u}" for u in names if draw(st.booleans()) or u == names[0]}
    for union, home in homes.items():
        add(
            mc,
            "home.register",
            {
                "home_id": home,
                "union_id": union,
                "name": "Home",
                "category": "enterprise",
                "opened_on": _day(unions[union] + 1),
            },
            "hr-system/c",
        )
    if draw(st.booleans()):
        add(
            mc,
            "station.register",
            {
                "station_id": "st-1",
                "union_id": names[-1],
                "name": "Warm station",
                "services": ["water"],
                "opened_on": _day(unions[names[-1]] + 2),
            },
            "hr-system/c",
        )

    def moment(day: int, hour: int) -> str:
        """An instant on Shanghai day `day`, written with one of several offsets."""
        at = datetime.combine(date(2018, 1, 1) + timedelta(days=day), datetime.min.time(), SHANGHAI)
        return (at + timedelta(hours=hour)).astimezone(draw(st.sampled_from(OFFSETS))).isoformat()

    def inside_first_stay(member: str) -> int | None:
        """A day well inside the member's first stay: a later step never changes who they were then."""
        first = stays[member][0]
        end = first.end if first.end is not None else first.start + 60
        return draw(st.integers(first.start + 1, end - 1)) if end - first.start >= 2 else None

    scores = {"organisation": 80, "facilities": 70, "work": 90, "labour_relations": 85, "finances": 75}
    campaign = "camp"
    add(
        ec,
        "campaign.open",
        {
            "campaign_id": campaign,
            "year": 2018,
            "title": "Stars",
            "weights": {"member": 0.5, "unit": 0.25, "superior": 0.25},
            "home_ids": sorted(homes.values()),
            "min_member_ratings": 1,
        },
        "rating-portal",
    )
    for member, member_stays in stays.items():
        kind = draw(st.sampled_from(["none", "valid", "too_early", "never_there"]))
        home = homes.get(member_stays[0].union)
        strangers = [h for u, h in homes.items() if all(s.union != u for s in member_stays)]
        day: int | None
        if kind == "valid" and home and (day := inside_first_stay(member)) is not None:
            pass
        elif kind == "too_early" and home:
            day = member_stays[0].start - 2
        elif kind == "never_there" and strangers:
            home, day = strangers[0], member_stays[0].start + 1
        else:
            continue
        add(
            ec,
            "rating.submit",
            {
                "campaign_id": campaign,
                "home_id": home,
                "rater_kind": "member",
                "rater_id": member,
                "scores": {**scores, "work": draw(st.integers(0, 100))},
                "submitted_at": moment(day, draw(st.integers(0, 23))),
            },
            "rating-portal",
        )
    for home in sorted(homes.values()):
        add(
            ec,
            "rating.submit",
            {
                "campaign_id": campaign,
                "home_id": home,
                "rater_kind": "unit",
                "rater_id": "employer",
                "scores": scores,
                "submitted_at": moment(300, 10),
            },
            "rating-portal",
        )
    if draw(st.booleans()):
        add(ec, "campaign.close", {"campaign_id": campaign}, "rating-portal")
    for n, member in enumerate(stays):
        if (day := inside_first_stay(member)) is None or not draw(st.booleans()):
            continue
        opinion, union = f"op-{n}", stays[member][0].union
        add(
            fc,
            "opinion.submit",
            {
                "opinion_id": opinion,
                "member_id": member,
                "channel": "rating_page",
                "text": "The canteen closes too early",
                "submitted_at": moment(day, 9),
            },
            "opinion-box",
        )
        cadre = cadres.get(union)
        if cadre is not None and draw(st.booleans()):
            responder, answered = cadre[0], max(day, cadre[1]) + draw(st.integers(0, 10))
        else:  # not a cadre of that union (nor ever one): forbidden when the hold ends
            responder, answered = member, day + 1
        add(
            fc,
            "opinion.respond",
            {"opinion_id": opinion, "responder_id": responder, "text": "Done.", "responded_at": moment(answered, 15)},
            "opinion-box",
        )
        if draw(st.booleans()):
            add(
                fc,
                "opinion.rate",
                {"opinion_id": opinion, "member_id": member, "satisfaction": draw(st.integers(1, 5))},
                "opinion-box",
            )
    if draw(st.booleans()):  # an opinion of someone membership never heard of
        add(
            fc,
            "opinion.submit",
            {
                "opinion_id": "op-ghost",
                "member_id": "ghost",
                "channel": "hotline",
                "text": "Hello",
                "submitted_at": moment(100, 9),
            },
            "opinion-box",
        )
    return feed


# --- the services, driven record by record --------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _record(topic: str, partition: int, offset: int, key: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    headers = [("content-type", b"application/cloudevents+json")]
    return ConsumerRecord(topic, partition, offset, 0, 0, key.encode(), value, None, len(key), len(value), headers)


def _partition(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


@dataclass
class Partition:
    """One partition of a topic as a consumer group reads it."""

    index: int
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    read: int = 0  # the committed offset

    @property
    def waiting(self) -> int:
        return len(self.records) - self.read

    def append(self, topic: str, key: str, value: bytes) -> None:
        self.records.append(_record(topic, self.index, len(self.records), key, value))


class System:
    """The three services with a partitioned log between senders and them, and between
    membership's events and the two services that read them."""

    def __init__(self, services: dict[str, Service]) -> None:
        self.services = services
        self.logs: dict[tuple[str, str], list[Partition]] = {}  # (service, topic) -> partitions
        for name, service in services.items():
            for pipeline in service.pipelines:
                self.logs[name, pipeline.config.topic] = [Partition(i) for i in range(PARTITIONS)]
        self._relayed = 0  # membership's outbox rows passed on so far

    def pipeline(self, service: str, topic: str) -> Pipeline:
        return next(p for p in self.services[service].pipelines if p.config.topic == topic)

    def send(self, command: Command) -> tuple[str, str, int]:
        body = {
            "specversion": "1.0",
            "id": command.id,
            "source": command.source,
            "type": command.type,
            "time": "2018-12-31T00:00:00+08:00",
            "datacontenttype": "application/json",
            "data": command.data,
        }
        where, key = (command.service, command.topic), command.key or command.id
        partition = _partition(key)
        self.logs[where][partition].append(command.topic, key, orjson.dumps(body))
        return (*where, partition)

    async def read(self, service: str, topic: str, partition: int, count: int, *, commit: bool = True) -> None:
        """The next `count` records of a partition as one batch; `commit=False` leaves the
        offset where it was (a rebalance before the commit): the batch comes again."""
        log = self.logs[service, topic][partition]
        batch = log.records[log.read : log.read + count]
        await self.pipeline(service, topic).process(batch)
        if commit:
            log.read += len(batch)
        if service == "membership":
            await self.relay()

    async def relay(self) -> int:
        """Membership's new events, onto the log evaluation and feedback read."""
        async with self.services["membership"].sessions() as session:
            rows = (
                await session.execute(
                    text("SELECT key, value FROM outbox WHERE id > :seen ORDER BY id"), {"seen": self._relayed}
                )
            ).all()
            self._relayed += len(rows)
        for key, value in rows:
            for reader in ("evaluation", "feedback"):
                self.logs[reader, "membership.events"][_partition(key)].append("membership.events", key, value)
        return len(rows)

    def waiting(self) -> list[tuple[str, str, int]]:
        return [(s, t, p) for (s, t), parts in self.logs.items() for p, log in enumerate(parts) if log.waiting]

    async def drain(self) -> None:
        while where := self.waiting():
            for service, topic, partition in where:
                await self.read(service, topic, partition, self.logs[service, topic][partition].waiting)

    async def settled(self) -> set[tuple[str, str, str]]:
        """Everything read, a timer round: what is still held then, (service, source, id).
        Only commands whose prerequisite never came may be left: a lost release shows here,
        before the end of the hold period would apply it anyway."""
        await self.drain()
        for service in self.services.values():
            await service.retry_held()
        await self.relay()
        await self.drain()
        held = set()
        for name, service in self.services.items():
            async with service.sessions() as session:
                rows = await session.execute(text("SELECT source, message_id FROM held_commands"))
                held |= {(name, source, message_id) for source, message_id in rows}
        return held

    async def end_of_holds(self, clock: Clock) -> None:
        """The hold period passes: every timer runs until nothing moves any more."""
        clock.now += timedelta(seconds=HOLD.hold_seconds + 1)
        for _ in range(20):
            moved = 0
            for service in self.services.values():
                moved += await service.retry_held()
            moved += await self.relay()
            await self.drain()
            if not moved:
                return
        raise AssertionError("the held commands never settled")

    async def answers(self) -> dict[tuple[str, str], list[tuple[str, Any]]]:
        """Each command's terminal answer: its events' types and data (a rejection by its code)."""
        found: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        for service in self.services.values():
            async with service.sessions() as session:
                for (value,) in (await session.execute(text("SELECT value FROM outbox ORDER BY id"))).all():
                    event = orjson.loads(value)
                    if event["type"] == "command.held" or "correlationsource" not in event:
                        continue
                    data = event["data"]["code"] if event["type"] == "command.rejected" else event["data"]
                    found.setdefault((event["correlationsource"], event["correlationid"]), []).append(
                        (event["type"], data)
                    )
        return found

    async def state(self) -> dict[str, list[str]]:
        """Every business table of every service, rows sorted."""
        tables: dict[str, list[str]] = {}
        for name, service in self.services.items():
            async with service.sessions() as session:
                names = (await session.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).scalars()
                for table in sorted(set(names) - RUNTIME):
                    columns = (await session.execute(text(f'PRAGMA table_info("{table}")'))).all()
                    # A row number (INTEGER PRIMARY KEY) says in which order rows came: not state.
                    numbered = [c.name for c in columns if c.pk] if sum(1 for c in columns if c.pk) == 1 else []
                    kept = ", ".join(f'"{c.name}"' for c in columns if not (c.name in numbered and c.type == "INTEGER"))
                    rows = (await session.execute(text(f'SELECT {kept} FROM "{table}"'))).all()
                    tables[f"{name}.{table}"] = sorted(repr(tuple(r)) for r in rows)
        return tables


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One migrated database per service, copied for every run (migrations take a while)."""
    import asyncio

    folder = tmp_path_factory.mktemp("templates")
    out = {}
    for name, (_, _, migrations) in BUILDERS.items():
        out[name] = folder / f"{name}.db"
        asyncio.run(upgrade_async(migrations, f"sqlite+aiosqlite:///{out[name]}"))
    return out


@asynccontextmanager
async def system(templates: dict[str, Path], folder: Path, clock: Clock) -> AsyncIterator[System]:
    run = folder / uuid.uuid4().hex[:8]
    run.mkdir()
    services = {}
    for name, (build, configure, _) in BUILDERS.items():
        shutil.copy(templates[name], run / f"{name}.db")
        services[name] = build(
            configure(
                database_url=f"sqlite+aiosqlite:///{run / name}.db",
                kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
                hold=HOLD,
            ),
            clock=clock,
        )
    try:
        yield System(services)
    finally:
        for service in services.values():
            await service.engine.dispose()
        shutil.rmtree(run)


async def one_at_a_time(feed: list[Command], templates: dict[str, Path], folder: Path) -> tuple[Any, Any, Any]:
    """The careful sender: each command read alone, membership's events passed on at once."""
    clock = Clock()
    async with system(templates, folder, clock) as s:
        for command in feed:
            await s.read(*s.send(command), 1)
            await s.drain()
        held = await s.settled()
        await s.end_of_holds(clock)
        return held, await s.answers(), await s.state()


async def interleaved(
    feed: list[Command], rng: random.Random, templates: dict[str, Path], folder: Path
) -> tuple[Any, Any, Any]:
    """Every command on its partition at once; partitions read in an order `rng` picks, in
    batches of its sizes, some batches read twice, the held-commands timer now and then."""
    clock = Clock()
    async with system(templates, folder, clock) as s:
        for command in feed:
            s.send(command)
        while where := s.waiting():
            if rng.random() < 0.1:
                await s.services[rng.choice(sorted(s.services))].retry_held()
            service, topic, partition = rng.choice(where)
            await s.read(service, topic, partition, rng.randint(1, 4), commit=rng.random() > 0.1)
        held = await s.settled()
        await s.end_of_holds(clock)
        return held, await s.answers(), await s.state()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(feed=causal_feeds(), rng=st.randoms(use_true_random=False))
async def test_any_interleaving_that_keeps_each_keys_order_ends_as_one_command_at_a_time(
    feed: list[Command], rng: random.Random, migrated: dict[str, Path], tmp_path: Path
) -> None:
    held, answers, state = await one_at_a_time(feed, migrated, tmp_path)
    assert {(c.source, c.id) for c in feed} == set(answers), "every command answered, each sender its own"
    live_held, live_answers, live_state = await interleaved(feed, rng, migrated, tmp_path)
    assert live_held == held, "held before the hold period ends: only what waits for what never came"
    assert live_answers == answers
    assert live_state == state
