"""The shared runtime's promises, shown with membership on the real broker and databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import membership.bootstrap
from membership.adapters import orm
from membership.settings import MembershipSettings
from tests.support import Collector, command, eventually, postgres_fetches, produce, running
from unionhub_runtime import inbox, inserts, postgres, reads
from unionhub_runtime.database import create_engine
from unionhub_runtime.service import Service
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

FED = {"union_id": "bj", "name": "Beijing", "level": "federation", "founded_on": "1949-01-01"}
DISTRICT = {
    "union_id": "ft",
    "name": "Fengtai",
    "level": "district",
    "parent_id": "bj",
    "district": "Fengtai",
    "founded_on": "1950-01-01",
}
SHOP = {
    "union_id": "ft-1",
    "name": "Steel",
    "level": "grassroots",
    "parent_id": "ft",
    "district": "Fengtai",
    "kind": "independent",
    "founded_on": "2018-02-01",
}


def build(kafka: KafkaSettings, database_url: str):
    return membership.bootstrap.build(MembershipSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10))


class Topics:
    def __init__(self, kafka: KafkaSettings) -> None:
        self.bootstrap = kafka.bootstrap_servers
        self.commands = kafka.topic_prefix + "membership.commands"
        self.events = kafka.topic_prefix + "membership.events"
        self.dlq = self.commands + ".dlq"

    async def send(self, *values: bytes, key: str | None = None) -> None:
        await produce(self.bootstrap, self.commands, list(values), [key] * len(values))


async def registered_hierarchy(topics: Topics, collected: Collector) -> None:
    for n, union in enumerate((FED, DISTRICT, SHOP), 1):
        await topics.send(command("union.register", union), key=union["union_id"])
        await collected.wait_for(lambda n=n: len(collected.events(topics.events, "union.registered")) == n)


@asynccontextmanager
async def hierarchy_registered(
    kafka: KafkaSettings, database_url: str
) -> AsyncIterator[tuple[Topics, Service, Collector]]:
    """Membership running on `database_url`, with the federation, a district and a shop."""
    topics = Topics(kafka)
    service = build(kafka, database_url)
    async with (
        Collector(topics.bootstrap, [topics.events]) as collected,
        running(service, membership.bootstrap.MIGRATIONS),
    ):
        await registered_hierarchy(topics, collected)
        yield topics, service, collected


async def test_a_redelivered_command_is_applied_once(kafka: KafkaSettings, database_url: str) -> None:
    async with hierarchy_registered(kafka, database_url) as (topics, service, collected):
        enroll = command(
            "member.enroll", {"member_id": "m-1", "union_id": "ft-1", "joined_on": "2018-03-01"}, id="enroll-once"
        )
        await topics.send(enroll, enroll, key="m-1")  # a producer retry: same id twice
        await topics.send(enroll, key="m-1")  # and once more, later, in another batch
        marker = command("member.enroll", {"member_id": "m-2", "union_id": "ft-1", "joined_on": "2018-03-01"})
        await topics.send(marker, key="m-1")  # same partition, behind the copies
        await collected.wait_for(lambda: len(collected.events(topics.events, "member.enrolled")) == 2)
        await asyncio.sleep(0.3)  # give a wrongly applied copy the time to show up
        enrolled = [e["data"]["member_id"] for e in collected.events(topics.events, "member.enrolled")]
        assert sorted(enrolled) == ["m-1", "m-2"]
        assert not collected.events(topics.events, "command.rejected")
        async with service.sessions() as session:
            history = await session.scalar(select(func.count()).where(orm.member_history.c.member_id == "m-1"))
        assert history == 1
        duplicates = service.metrics.inbox_duplicates.labels("membership.commands")._value.get()
        assert duplicates == 2


async def test_garbage_goes_to_the_dlq_and_the_next_good_message_is_still_processed(
    kafka: KafkaSettings, database_url: str
) -> None:
    topics = Topics(kafka)
    async with (
        Collector(topics.bootstrap, [topics.events, topics.dlq]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS),
    ):
        garbage = b"\x00\x01 definitely not json"
        invalid = command(
            "member.enroll", {"member_id": "m-1", "union_id": "ft-1", "joined_on": "someday"}, id="bad-date"
        )
        good = command("union.register", FED, id="good-one")
        await topics.send(garbage, invalid, good, key="same-partition")
        await collected.wait_for(lambda: collected.events(topics.events, "union.registered"), what="good processed")
        await collected.wait_for(lambda: len([r for r in collected.records if r.topic == topics.dlq]) == 2)
        letters = [r for r in collected.records if r.topic == topics.dlq]
        assert [r.value for r in letters] == [garbage, invalid]  # copied unchanged, in order
        first = letters[0].headers
        assert first["error.code"] == b"not_json"
        assert first["original.topic"] == topics.commands.encode()
        assert int(first["original.offset"]) >= 0 and int(first["original.partition"]) >= 0
        assert letters[1].headers["error.code"] == b"invalid_data"
        assert b"joined_on" in letters[1].headers["error.message"]
        await collected.wait_for(lambda: collected.events(topics.events, "command.rejected"))
        rejection = collected.events(topics.events, "command.rejected")[0]
        assert rejection["data"]["command_id"] == "bad-date"
        assert rejection["data"]["command_type"] == "member.enroll"
        assert rejection["data"]["code"] == "invalid"
        assert rejection["correlationid"] == "bad-date"


async def test_a_rule_violation_is_published_as_command_rejected(kafka: KafkaSettings, database_url: str) -> None:
    topics = Topics(kafka)
    async with (
        Collector(topics.bootstrap, [topics.events]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS),
    ):
        await topics.send(
            command("member.leave", {"member_id": "ghost", "left_on": "2018-01-01", "reason": "x"}, id="leave-ghost"),
            key="ghost",
        )
        await collected.wait_for(lambda: collected.events(topics.events, "command.rejected"))
        data = collected.events(topics.events, "command.rejected")[0]["data"]
        assert data == {
            "command_id": "leave-ghost",
            "command_type": "member.leave",
            "code": "not_found",
            "reason": "member ghost is not registered",
        }


async def test_an_event_committed_but_not_published_before_a_stop_is_published_once_after_restart(
    kafka: KafkaSettings, database_url: str
) -> None:
    topics = Topics(kafka)
    first = build(kafka, database_url)
    async with Collector(topics.bootstrap, [topics.events]) as collected:
        async with running(first, membership.bootstrap.MIGRATIONS):
            await first.relay.stop()  # the process "dies" between commit and publish
            await topics.send(command("union.register", FED, id="survivor"), key="bj")
            for _ in range(400):
                if await first.relay.backlog() == 1:
                    break
                await asyncio.sleep(0.05)
            assert await first.relay.backlog() == 1, "the command was not committed"
        await asyncio.sleep(0.5)
        assert collected.events(topics.events) == []
        second = build(kafka, database_url)
        async with running(second, membership.bootstrap.MIGRATIONS):
            await collected.wait_for(lambda: collected.events(topics.events, "union.registered"), what="replayed")
            await asyncio.sleep(0.5)
            assert await second.relay.backlog() == 0
        events = collected.events(topics.events)
        assert len(events) == 1 and events[0]["correlationid"] == "survivor"
        assert events[0]["data"]["union_id"] == "bj"


async def test_a_batch_is_handled_on_the_event_loop_without_a_worker_thread(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hand-over to a worker thread and back costs each batch two thread wake-ups (on two
    # busy cores, milliseconds of latency): FastStream's dependency injection makes one for
    # every argument it resolves from its context with a plain function.
    handed_over: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func: object, *args: object, **kwargs: object) -> object:
        handed_over.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    async with hierarchy_registered(kafka, database_url):  # three batches, each waited for
        pass
    assert handed_over == []


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_batch_claims_looks_up_and_checks_held_lanes_in_one_statement(
    kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each statement is a round trip the batch waits for (and the commands behind it).
    sent = [postgres_fetches(monkeypatch, module) for module in (postgres, reads, inbox, inserts)]
    async with hierarchy_registered(kafka, database_url) as (topics, _, collected):
        await topics.send(
            *(
                command("member.enroll", {"member_id": f"m-{n}", "union_id": "ft-1", "joined_on": "2018-03-01"})
                for n in range(5)
            ),
            key="m",
        )
        await collected.wait_for(lambda: len(collected.events(topics.events, "member.enrolled")) == 5)
    statements = [statement for one in sent for statement in one]
    claims = [s for s in statements if "INSERT INTO inbox" in s]
    assert claims and all("held_lanes" in s and "FROM members" in s for s in claims)
    assert all("INSERT INTO inbox" in s for s in statements if "held_lanes" in s or "FROM members JOIN" in s)


async def claim_waiting(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO inbox%'"
            )
        )
    return bool(waiting)


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_batch_whose_claim_waited_for_another_owner_applies_on_what_that_one_committed(
    kafka: KafkaSettings, database_url: str
) -> None:
    # A partition's previous owner (a rebalance) may still be applying a message of the batch:
    # the claim waits for its transaction, and what the batch's other commands see must be
    # what that one committed, not what was there when the batch's reads began.
    topics = Topics(kafka)
    service = build(kafka, database_url)
    other = create_engine(database_url)
    try:
        async with (
            Collector(topics.bootstrap, [topics.events]) as collected,
            running(service, membership.bootstrap.MIGRATIONS),
        ):
            await registered_hierarchy(topics, collected)
            for union_id in ("ft-2", "ft-3"):
                await topics.send(command("union.register", {**SHOP, "union_id": union_id}), key=union_id)
            enroll = {"member_id": "m-1", "union_id": "ft-1", "joined_on": "2018-03-01"}
            await topics.send(command("member.enroll", enroll), key="m-1")
            await collected.wait_for(lambda: collected.events(topics.events, "member.enrolled"))
            await collected.wait_for(lambda: len(collected.events(topics.events, "union.registered")) == 5)
            move = {"member_id": "m-1", "to_union_id": "ft-2", "transferred_on": "2018-04-01"}
            async with other.connect() as previous_owner:
                applying = await previous_owner.begin()
                await previous_owner.execute(
                    text(
                        "INSERT INTO inbox (consumer, source, message_id, received_at) "
                        "VALUES ('membership.commands', 'tests', 'moved-by-the-previous-owner', now())"
                    )
                )
                await previous_owner.execute(text("UPDATE members SET union_id = 'ft-2' WHERE member_id = 'm-1'"))
                await topics.send(
                    command("member.transfer", move, id="moved-by-the-previous-owner"),
                    command("member.transfer", {**move, "to_union_id": "ft-3", "transferred_on": "2018-05-01"}),
                    key="m-1",
                )
                await eventually(lambda: claim_waiting(other), "the batch's claim waiting for this transaction")
                await applying.commit()
            await collected.wait_for(lambda: collected.events(topics.events, "member.transferred"))
            await asyncio.sleep(0.3)
        [moved] = collected.events(topics.events, "member.transferred")
        assert (moved["data"]["from_union_id"], moved["data"]["to_union_id"]) == ("ft-2", "ft-3")
    finally:
        await other.dispose()
