"""What real senders do: reuse ids across systems, publish in binary mode, redeliver."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import func, select

import membership.bootstrap
from membership.adapters import orm
from membership.settings import MembershipSettings
from tests.support import Collector, running
from unionhub_contracts.client import CommandClient
from unionhub_runtime.settings import HoldSettings, KafkaSettings

pytestmark = pytest.mark.integration

HIERARCHY = [
    {"union_id": "bj", "name": "Beijing", "level": "federation", "founded_on": "1949-01-01"},
    {
        "union_id": "ft",
        "name": "Fengtai",
        "level": "district",
        "parent_id": "bj",
        "district": "Fengtai",
        "founded_on": "1950-01-01",
    },
    {
        "union_id": "ft-1",
        "name": "Steel",
        "level": "grassroots",
        "parent_id": "ft",
        "district": "Fengtai",
        "kind": "independent",
        "founded_on": "2018-02-01",
    },
]


def enrolment(member_id: str) -> dict[str, str]:
    return {"member_id": member_id, "union_id": "ft-1", "joined_on": "2018-03-01"}


def build(kafka: KafkaSettings, database_url: str):
    return membership.bootstrap.build(MembershipSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10))


def client(kafka: KafkaSettings, source: str) -> CommandClient:
    return CommandClient(kafka.bootstrap_servers, source=source, topic_prefix=kafka.topic_prefix)


async def register_hierarchy(sender: CommandClient) -> None:
    for union in HIERARCHY:
        assert (await sender.answer(await sender.send("union.register", union))).type == "union.registered"


async def test_two_senders_may_use_one_id_and_each_gets_its_own_answer(kafka: KafkaSettings, database_url: str) -> None:
    service = build(kafka, database_url)
    async with (
        running(service, membership.bootstrap.MIGRATIONS),
        client(kafka, "hr-system/fengtai") as fengtai,
        client(kafka, "hr-system/haidian") as haidian,
    ):
        await register_hierarchy(fengtai)
        # In flight together, so that they are likely read in one batch.
        pending = [
            await fengtai.enqueue("member.enroll", enrolment("m-ft"), id="hr-0001"),
            await haidian.enqueue("member.enroll", enrolment("m-hd"), id="hr-0001"),
        ]
        first, second = [await p for p in pending]
        answers = [await fengtai.answer(first), await haidian.answer(second)]
        assert [[(e["type"], e["data"]["member_id"]) for e in a.events] for a in answers] == [
            [("member.enrolled", "m-ft")],
            [("member.enrolled", "m-hd")],
        ]
        assert {e["correlationsource"] for a in answers for e in a.events} == {"hr-system/fengtai", "hr-system/haidian"}
        # Each redelivered (same source and id) is applied once: no second answer, no second row.
        await fengtai.send("member.enroll", enrolment("m-ft"), id="hr-0001")
        await haidian.send("member.enroll", enrolment("m-hd"), id="hr-0001")
        marker = await fengtai.send("member.enroll", enrolment("m-marker"))
        await fengtai.answer(marker)
        assert [len(fengtai.answers["hr-0001"].events), len(haidian.answers["hr-0001"].events)] == [1, 1]
        async with service.sessions() as session:
            history = await session.scalar(select(func.count()).select_from(orm.member_history))
            inbox = await session.scalar(select(func.count()).select_from(orm.runtime_tables.inbox))
        assert (history, inbox) == (3, len(HIERARCHY) + 3)


def binary(
    command_type: str, data: dict[str, object], *, id: str, source: str = "hotline/binary"
) -> tuple[bytes, list[tuple[str, bytes]]]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", command_type.encode()),
        ("ce_time", b"2018-03-01T09:00:00+08:00"),
        ("content-type", b"application/json"),
    ]
    return orjson.dumps(data), headers


async def test_a_binary_mode_command_has_the_outcomes_of_a_structured_one(
    kafka: KafkaSettings, database_url: str
) -> None:
    service = membership.bootstrap.build(
        MembershipSettings(  # an unknown union: held one second, then rejected
            database_url=database_url,
            kafka=kafka,
            batch_timeout_ms=10,
            hold=HoldSettings(hold_seconds=1, hold_check_seconds=0.2),
        )
    )
    commands, events = kafka.topic_prefix + "membership.commands", kafka.topic_prefix + "membership.events"
    async with (
        running(service, membership.bootstrap.MIGRATIONS),
        client(kafka, "hr-system/fengtai") as sender,
        Collector(kafka.bootstrap_servers, [events, commands + ".dlq"]) as collected,
    ):
        await register_hierarchy(sender)
        good = binary("member.enroll", enrolment("m-bin"), id="bin-1")
        unknown_union = binary("member.enroll", {**enrolment("m-lost"), "union_id": "ft-404"}, id="bin-2")
        bad_data = binary("member.enroll", {"member_id": "m-x"}, id="bin-3")
        not_json = (b"{oops", binary("member.enroll", {}, id="bin-4")[1])
        for value, headers in (good, good, unknown_union, bad_data, not_json):  # `good` twice: a redelivery
            await produce_with_headers(kafka.bootstrap_servers, commands, value, headers)

        def answered() -> dict[str, list[dict[str, object]]]:
            found: dict[str, list[dict[str, object]]] = {}
            for event in collected.events(events):
                if str(event.get("correlationid", "")).startswith("bin-"):
                    found.setdefault(str(event["correlationid"]), []).append(event)
            return found

        await collected.wait_for(
            lambda: (
                len(answered()) == 4
                and len(answered()["bin-2"]) == 2
                and sum(r.topic == commands + ".dlq" for r in collected.records) == 2
            ),
            what="answers to four binary commands and two dead letters",
        )
        by_id = answered()
        assert [e["type"] for e in by_id["bin-1"]] == ["member.enrolled"]
        assert by_id["bin-1"][0]["correlationsource"] == "hotline/binary"
        assert [(e["type"], e["data"].get("code")) for e in by_id["bin-2"]] == [
            ("command.held", None),
            ("command.rejected", "not_found"),
        ]
        assert [(e["data"]["code"]) for e in by_id["bin-3"] + by_id["bin-4"]] == ["invalid", "invalid"]
        dead = [r for r in collected.records if r.topic == commands + ".dlq"]
        assert [(r.headers["error.code"], r.headers["ce_id"]) for r in dead] == [
            (b"invalid_data", b"bin-3"),
            (b"not_json", b"bin-4"),
        ]
        assert [r.value for r in dead] == [bad_data[0], b"{oops"]  # unchanged


async def produce_with_headers(bootstrap: str, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"m-bin", headers=headers)
    finally:
        await producer.stop()


async def test_the_contracts_client_sets_key_headers_and_correlation(kafka: KafkaSettings) -> None:
    commands = kafka.topic_prefix + "membership.commands"
    async with (
        client(kafka, "hr-system/fengtai") as sender,
        Collector(kafka.bootstrap_servers, [commands]) as collected,
    ):
        sent = await sender.send("member.enroll", enrolment("m-7"), correlation_id="import-42")
        with pytest.raises(ValueError, match="joined_on"):
            await sender.send("member.enroll", {"member_id": "m-8", "union_id": "ft-1"})
        await collected.wait_for(lambda: len(collected.records) == 1)
    [record] = collected.records
    assert record.key == b"m-7" and record.headers["content-type"] == b"application/cloudevents+json"
    assert record.headers["traceparent"].startswith(b"00-")
    assert {k: record.event[k] for k in ("id", "source", "type", "correlationid")} == {
        "id": sent.id,
        "source": "hr-system/fengtai",
        "type": "member.enroll",
        "correlationid": "import-42",
    }
