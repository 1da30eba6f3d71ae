"""`unionhub dlq` and `unionhub status` on the real broker and database: an on-call engineer's
walk from a poison command to its replay, and the guards that keep a replay from changing an
outcome behind their back."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

import membership.bootstrap
from tests.conftest import _free_port
from tests.integration.test_runtime_guarantees import Topics, build, registered_hierarchy
from tests.support import Collector, command, eventually, produce, running
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.ops.cli import parser, run
from unionhub_runtime.ops.target import Target
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

ENROL = {"member_id": "m-1", "union_id": "ft-1", "joined_on": "2018-03-01", "display_name": "Wang Fang"}


async def unionhub(target: Target, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Runs `unionhub <argv>` against `target`; its exit status and what it printed."""
    capsys.readouterr()
    code = await run(target, parser().parse_args(list(argv)))
    return code, capsys.readouterr().out


def enrolled(collected: Collector, topics: Topics, member_id: str) -> list[dict[str, Any]]:
    return [e for e in collected.events(topics.events, "member.enrolled") if e["data"]["member_id"] == member_id]


async def test_a_poison_command_is_listed_shown_masked_fixed_replayed_once_and_a_second_replay_changes_nothing(
    kafka: KafkaSettings, database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    topics = Topics(kafka)
    async with (
        Collector(topics.bootstrap, [topics.events, topics.dlq]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS) as service,
    ):
        target = Target.of(service)
        await registered_hierarchy(topics, collected)
        poison = command("member.enroll", {**ENROL, "joined_on": "someday"}, id="enrol-m-1")
        await topics.send(poison, key="m-1")
        await collected.wait_for(lambda: collected.events(topics.events, "command.rejected"), what="rejected")
        await collected.wait_for(lambda: [r for r in collected.records if r.topic == topics.dlq], what="dead letter")

        (copy,) = [r for r in collected.records if r.topic == topics.dlq]
        assert copy.headers["error.group"] == target.subscriptions[0].group.encode()
        # Another service reading the same topic shares its DLQ: its dead letters are not ours.
        theirs = [(k, v) for k, v in copy.headers.items() if k != "error.group"] + [("error.group", b"other.group")]
        await produce(topics.bootstrap, topics.dlq, [copy.value], ["m-1"], theirs)

        code, listed = await unionhub(target, capsys, "dlq", "list", "--code", "invalid_data", "--json")
        (line,) = listed.splitlines()
        letter = orjson.loads(line)
        assert (code, letter["code"], letter["id"], letter["type"], letter["key"]) == (
            0,
            "invalid_data",
            "enrol-m-1",
            "member.enroll",
            "m-1",
        )
        assert (await unionhub(target, capsys, "dlq", "list", "--code", "not_json"))[1] == ""

        saved = tmp_path / "value.json"
        code, shown = await unionhub(target, capsys, "dlq", "show", letter["address"], "--write-value", str(saved))
        assert code == 0 and "Wang Fang" not in shown and "<masked: 9 chars>" in shown and "someday" in shown
        assert saved.read_bytes() == poison and stat.S_IMODE(os.stat(saved).st_mode) == 0o600

        # Replayed unchanged, it would only be dead-lettered again: refused, nothing sent.
        code, summary = await unionhub(target, capsys, "dlq", "replay", "--at", letter["address"])
        assert code == 3 and "still does not decode" in summary and "0 sent" in summary

        saved.write_bytes(saved.read_bytes().replace(b'"someday"', b'"2018-03-01"'))
        code, summary = await unionhub(
            target, capsys, "dlq", "replay", "--at", letter["address"], "--value-file", str(saved)
        )
        assert (code, summary.splitlines()[0]) == (
            0,
            "1 dead letters selected: 1 sent, 0 already applied (in the service's inbox), 0 held back, 0 not replayable",
        )
        await collected.wait_for(lambda: enrolled(collected, topics, "m-1"), what="the fixed command applied")

        code, summary = await unionhub(
            target, capsys, "dlq", "replay", "--at", letter["address"], "--value-file", str(saved)
        )
        assert (code, "0 sent, 1 already applied" in summary) == (0, True)
        code, report = await unionhub(target, capsys, "status", "--json")
        status = orjson.loads(report)
        assert status["dead_letters_last_hour"] == {f"{topics.commands} invalid_data": 1}
        assert status["inbox"] == {"membership.commands": 4}  # three unions, one member
        assert status["outbox_unpublished"] == 0 or status["oldest_unpublished"] is not None
        assert [g["topic"] for g in status["groups"]] == ["membership.commands"]
        assert len(enrolled(collected, topics, "m-1")) == 1


async def test_a_dead_letter_whose_key_moved_on_is_held_back_unless_forced(
    kafka: KafkaSettings, database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    topics = Topics(kafka)
    async with (
        Collector(topics.bootstrap, [topics.events, topics.dlq]) as collected,
        running(build(kafka, database_url), membership.bootstrap.MIGRATIONS) as service,
    ):
        target = Target.of(service)
        await registered_hierarchy(topics, collected)
        await topics.send(command("member.enroll", {**ENROL, "joined_on": "someday"}, id="first"), key="m-1")
        await topics.send(command("member.enroll", ENROL, id="second"), key="m-1")  # the sender tried again
        await collected.wait_for(lambda: enrolled(collected, topics, "m-1"), what="the second applied")
        fixed = tmp_path / "fixed.json"
        fixed.write_bytes(command("member.enroll", {**ENROL, "joined_on": "2018-04-01"}, id="first"))
        (letter,) = [orjson.loads(x) for x in (await unionhub(target, capsys, "dlq", "list", "--json"))[1].splitlines()]
        replay = ("dlq", "replay", "--at", letter["address"], "--value-file", str(fixed))

        async def held_back() -> bool:  # once the group has committed the second command
            code, summary = await unionhub(target, capsys, *replay, "--dry-run")
            return code == 3 and "1 later command(s) for its key were applied or are waiting to be" in summary

        await eventually(held_back, "the later command seen as applied")
        assert not [r for r in collected.records if r.headers.get("unionhub.replay-of")]  # dry runs send nothing

        code, summary = await unionhub(target, capsys, *replay, "--force")
        assert code == 0 and "1 sent" in summary

        # Applied after the second, the first now finds the member enrolled: its answer says so.
        def answers() -> list[dict[str, Any]]:
            return [
                e for e in collected.events(topics.events, "command.rejected") if e["data"]["command_id"] == "first"
            ]

        await collected.wait_for(lambda: len(answers()) == 2, what="the forced replay answered")
        assert [a["data"]["code"] for a in answers()] == ["invalid", "already_active"]
        assert len(enrolled(collected, topics, "m-1")) == 1


async def test_a_keys_dead_letters_replay_in_their_order_to_their_partition_unless_later_commands_wait(
    kafka: KafkaSettings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tool needs the broker and the database, not the service: none runs here, so nothing
    # is applied or committed behind the test's back.
    target = Target.of(build(kafka, database_url))
    await upgrade_async(membership.bootstrap.MIGRATIONS, database_url)
    topics, group = Topics(kafka), target.subscriptions[0].group
    partition = 4  # not where aiokafka's partitioner puts "m-2": the sender's own partitioner
    enrol, leave = (
        command("member.enroll", ENROL, id="e"),
        command("member.leave", {"member_id": "m-1", "left_on": "2018-09-01", "reason": "retired"}, id="l"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap)
    await producer.start()
    try:
        for offset, value in enumerate((enrol, leave)):
            await producer.send_and_wait(topics.commands, value, key=b"m-2", partition=partition)
            await producer.send_and_wait(
                topics.dlq,
                value,
                key=b"m-2",
                headers=[
                    ("error.code", b"handler_error"),
                    ("error.message", b"a bug, since fixed"),
                    ("error.group", group.encode()),
                    ("original.topic", topics.commands.encode()),
                    ("original.partition", str(partition).encode()),
                    ("original.offset", str(offset).encode()),
                ],
            )
        # Both set aside: neither was applied, so the enrolment does not wait for the leaving.
        code, summary = await unionhub(target, capsys, "dlq", "replay", "--dry-run")
        assert (code, summary.splitlines()[1:]) == (
            0,
            [
                f"  would send      {topics.dlq}:0:0 → {topics.commands}:{partition}",
                f"  would send      {topics.dlq}:0:1 → {topics.commands}:{partition}",
            ],
        )
        # A later command of the key not applied yet would still run before copies sent now.
        await producer.send_and_wait(topics.commands, enrol, key=b"m-2", partition=partition)
        code, summary = await unionhub(target, capsys, "dlq", "replay")
        assert code == 3 and "0 sent" in summary and "2 held back" in summary
        assert summary.count("1 later command(s) for its key were applied or are waiting to be") == 2

        code, summary = await unionhub(target, capsys, "dlq", "replay", "--force")
        assert code == 0 and "2 sent" in summary
    finally:
        await producer.stop()
        await target.service.engine.dispose()
    async with Collector(topics.bootstrap, [topics.commands]) as collected:
        await collected.wait_for(lambda: len(collected.records) == 5, what="the two copies")
    copies = [(r.partition, r.value) for r in collected.records if r.headers.get("unionhub.replay-of")]
    assert copies == [(partition, enrol), (partition, leave)]


async def test_status_with_kafka_away_still_reports_the_database_and_says_what_it_could_not_read(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_free_port()}")
    target = Target.of(build(nowhere, database_url))
    await upgrade_async(membership.bootstrap.MIGRATIONS, database_url)
    code, report = await unionhub(target, capsys, "status", "--json")
    status = orjson.loads(report)
    assert code == 1 and [u.split(":")[0] for u in status["unreachable"]] == ["kafka"]
    assert (status["outbox_unpublished"], status["inbox"], status["held"]) == (0, {}, {})


def test_the_installed_command_names_the_service_it_needs(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UNIONHUB_AUTH_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("unionhub")), "dlq", "list"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert done.returncode == 1
    assert "name the service with --service" in done.stderr and "membership" in done.stderr


def test_bad_times_are_refused_with_the_form_expected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["dlq", "list", "--since", "2018-05-20T10:00:00"])
    assert exited.value.code == 2 and "+08:00" in capsys.readouterr().err
