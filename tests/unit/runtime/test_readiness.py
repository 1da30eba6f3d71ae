"""Readiness and Kafka: a blip shorter than 30 s does not flip `/readyz`; an outage that
lasts does (the contract, "Every service"). Timed with a clock the test moves."""

from __future__ import annotations

import asyncio

from unionhub_runtime.readiness import KAFKA_GRACE_SECONDS, Outage, watch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_kafka_is_granted_thirty_seconds() -> None:
    assert KAFKA_GRACE_SECONDS == 30.0


def test_failed_probes_for_less_than_the_grace_period_do_not_count_as_an_outage() -> None:
    clock = Clock()
    outage = Outage(30, clock)
    for _ in range(6):  # a probe every 5 s, all failing, for 29.9 s
        outage.observe(False)
        clock.now += 5
    clock.now -= 0.1
    assert not outage.failing


def test_probes_failing_for_the_whole_grace_period_are_an_outage_until_one_succeeds() -> None:
    clock = Clock()
    outage = Outage(30, clock)
    outage.observe(False)
    clock.now += 30
    outage.observe(False)
    assert outage.failing
    outage.observe(True)
    assert not outage.failing


def test_a_success_between_two_blips_starts_the_grace_period_again() -> None:
    clock = Clock()
    outage = Outage(30, clock)
    outage.observe(False)
    clock.now += 20
    outage.observe(True)  # back after 20 s
    clock.now += 1
    outage.observe(False)  # away again
    clock.now += 20  # 41 s since the first failure, 20 s since the last success
    assert not outage.failing


async def test_the_watch_counts_a_probe_that_raises_as_a_failure() -> None:
    clock = Clock()
    outage = Outage(30, clock)
    answers = iter([True, "raise"])
    probed = asyncio.Event()

    async def probe() -> bool:
        answer = next(answers, None)
        if answer is None:
            probed.set()
            await asyncio.Event().wait()
        if answer == "raise":
            raise ConnectionRefusedError("broker gone")
        return True

    task = asyncio.create_task(watch(probe, outage, every_seconds=0))
    await asyncio.wait_for(probed.wait(), 2)
    task.cancel()
    clock.now += 30
    assert outage.failing
