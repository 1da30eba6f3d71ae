"""The held-commands timer's schedule (`RetrySchedule`): which held rows a round retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from unionhub_runtime.holding import RetrySchedule

HELD = datetime(2018, 6, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def rounds(schedule: RetrySchedule, expires_at: datetime, first: float, last: float) -> list[float]:
    """Runs a round every 2 s from `first` to `last` seconds after the row was held (the row
    never settles); the seconds at which it was retried."""
    row = (1, HELD, expires_at)
    retried = []
    at = first
    while at <= last:
        now = HELD + at * S
        since = schedule.since(now)
        candidates = [row] if since is None or since <= HELD or expires_at <= now else []
        due = schedule.due(candidates, now)
        schedule.tried(due, now)
        schedule.round_done(now, candidates)
        retried += [at] * len(due)
        at += 2
    return retried


def test_a_row_is_retried_once_its_window_ends_not_before() -> None:
    schedule = RetrySchedule(first=2 * S, window=60 * S)
    schedule.round_done(HELD - S, [])  # a round before the row was held
    retried = rounds(schedule, HELD + 3600 * S, 1, 200)
    assert retried[0] >= 60 and retried[0] < 62  # the net for a recheck lost with its instance
    assert len(retried) <= 2  # then it is no candidate any more


def test_a_row_retried_in_an_instances_first_round_still_gets_its_window_retry() -> None:
    schedule = RetrySchedule(first=2 * S, window=60 * S)
    retried = rounds(schedule, HELD + 3600 * S, 1, 200)
    assert retried[0] == 1  # the first round retries everything once
    assert any(60 <= at < 62 for at in retried), retried


def test_a_row_whose_hold_ends_is_retried_at_once() -> None:
    schedule = RetrySchedule(first=2 * S, window=60 * S)
    retried = rounds(schedule, HELD + 10 * S, 1, 30)
    assert 11 in retried, retried  # held until 10 s: the round at 11 s rejects it
