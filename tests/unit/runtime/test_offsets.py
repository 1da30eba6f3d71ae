"""Offsets committed in the background (`unionhub_runtime.offsets`): what is committed is the
offset after each partition's last applied record, never more; commits go one at a time,
what arrives meanwhile coalesced into the next; a commit failed for a reason that passes is
made again for the partitions still assigned, one a rebalance refused is not (their owner
reads them again); a partition revoked before its commit is left out of it, not the others
with it; a stop waits for a commit only so long."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, GroupCoordinatorNotAvailableError, IllegalStateError

from unionhub_runtime import offsets
from unionhub_runtime.offsets import BackgroundCommits, after

P0, P1, P2 = (TopicPartition("membership.commands", p) for p in range(3))


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures: list[Exception] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.gate.wait()
        if unassigned := set(offsets) - self.assigned:  # as aiokafka refuses the whole commit
            raise IllegalStateError(f"Partition {unassigned} is not assigned")
        if self.failures:
            raise self.failures.pop(0)
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return self.assigned


def record(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="membership.commands", partition=partition, offset=offset)


def test_the_offset_after_each_partitions_last_record() -> None:
    batch = [record(0, 7), record(1, 3), record(0, 5), record(0, 9), record(1, 2)]
    assert after(batch) == {P0: 10, P1: 4}


async def test_commits_go_one_at_a_time_and_coalesce_what_came_meanwhile() -> None:
    consumer, commits = FakeConsumer({P0, P1}), BackgroundCommits("membership.commands")
    consumer.gate.clear()
    commits.submit(consumer, {P0: 10})
    await asyncio.sleep(0)  # the first commit is under way
    commits.submit(consumer, {P0: 20, P1: 4})
    commits.submit(consumer, {P0: 15, P1: 8})  # an older offset never lowers a newer one
    consumer.gate.set()
    await commits.flush()
    assert consumer.commits == [{P0: 10}, {P0: 20, P1: 8}]


async def test_a_failed_commit_is_made_again_for_the_partitions_still_assigned(monkeypatch) -> None:
    monkeypatch.setattr(offsets, "RETRY_SECONDS", 0.01)
    consumer, commits = FakeConsumer({P0, P1}), BackgroundCommits("membership.commands")
    consumer.failures = [GroupCoordinatorNotAvailableError(), GroupCoordinatorNotAvailableError()]
    commits.submit(consumer, {P0: 10, P2: 5})  # P2 was taken by a rebalance meanwhile
    await commits.flush()
    assert consumer.commits == [{P0: 10}]


async def test_a_commit_a_rebalance_refused_is_not_tried_again() -> None:
    consumer, commits = FakeConsumer({P0}), BackgroundCommits("membership.commands")
    consumer.failures = [CommitFailedError()]
    commits.submit(consumer, {P0: 10})
    await commits.flush()
    assert consumer.commits == []
    commits.submit(consumer, {P0: 12})  # the next batch's commit carries the offsets on
    await commits.flush()
    assert consumer.commits == [{P0: 12}]


async def test_offsets_given_for_a_new_consumer_are_committed_by_it() -> None:
    old, new, commits = FakeConsumer({P0}), FakeConsumer({P0}), BackgroundCommits("membership.commands")
    old.gate.clear()
    commits.submit(old, {P0: 5})
    await asyncio.sleep(0)
    commits.submit(new, {P0: 9})  # the subscription's consumer started again
    old.gate.set()
    await commits.flush()
    assert new.commits == [{P0: 9}]


async def test_flush_gives_up_on_a_coordinator_that_does_not_answer() -> None:
    consumer, commits = FakeConsumer({P0}), BackgroundCommits("membership.commands")
    consumer.gate.clear()
    commits.submit(consumer, {P0: 3})
    await asyncio.wait_for(commits.flush(timeout=0.05), 1)
    await commits.close()
    assert consumer.commits == []


async def test_flush_waits_for_the_commit_under_way() -> None:
    consumer, commits = FakeConsumer({P0}), BackgroundCommits("membership.commands")
    consumer.gate.clear()
    commits.submit(consumer, {P0: 3})
    flushed = asyncio.create_task(commits.flush())
    await asyncio.sleep(0.01)
    assert not flushed.done()
    consumer.gate.set()
    await flushed
    assert consumer.commits == [{P0: 3}]


async def test_a_partition_revoked_before_its_commit_does_not_take_the_others_with_it() -> None:
    consumer, commits = FakeConsumer({P0, P1}), BackgroundCommits("membership.commands")
    commits.submit(consumer, {P0: 20, P1: 4})
    consumer.assigned = {P0}  # a rebalance took P1 before the commit ran
    await commits.flush()
    assert consumer.commits == [{P0: 20}]
