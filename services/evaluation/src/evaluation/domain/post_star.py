"""The monthly post star from automatic work-item scores."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from functools import lru_cache

from unionhub_domain import month_of as calendar_month_of

from .scoring import round_half_up

MIN_ITEMS = 20
SCORE_SCALE = 1000  # scores are kept as integer thousandths, so sums are exact


def month_of(scored_at: datetime, timestamp: float | None = None) -> str:
    """The calendar month of an instant in Asia/Shanghai, `YYYY-MM` (`timestamp`: the
    instant's `timestamp()`, when the caller has it already)."""
    if timestamp is None:
        timestamp = scored_at.timestamp()
    if 0 <= timestamp < _CACHED_UP_TO:
        # Since 1901 Shanghai's offset has been whole hours, so a month starts on an hour
        # boundary: the month of the hour is the month of every instant in it (and cached per
        # hour, since converting time zones costs more than everything else done per item).
        return _month_of_hour(int(timestamp) // 3600)
    # Before 1970 truncating would round towards the next hour (and before 1901 months began
    # off the hour): the instant itself is converted.
    return calendar_month_of(scored_at)


# Up to here (2106) a float of seconds, rounded from the exact count, never reaches the next
# whole second from a microsecond before it (its spacing stays under a microsecond).
_CACHED_UP_TO = 2**32


@lru_cache(maxsize=65_536)
def _month_of_hour(hour: int) -> str:
    return calendar_month_of(datetime.fromtimestamp(hour * 3600, UTC))


def scaled(score: float) -> int:
    return round(score * SCORE_SCALE)


@dataclass(frozen=True)
class WorkerMonth:
    post_id: str
    worker_id: str
    items: int
    score_sum: int  # thousandths

    @property
    def average(self) -> Fraction:
        return Fraction(self.score_sum, self.items * SCORE_SCALE)


@dataclass(frozen=True)
class PostStar:
    post_id: str
    worker_id: str
    average: float
    items: int


def winners(candidates: Iterable[WorkerMonth]) -> list[PostStar]:
    """Per post: the best average among workers with 20+ items; ties to more items, then
    the smaller worker id. Posts without a qualified worker get no star."""
    best: dict[str, WorkerMonth] = {}
    for c in candidates:
        if c.items < MIN_ITEMS:
            continue
        current = best.get(c.post_id)
        if current is None or _better(c, current):
            best[c.post_id] = c
    return [PostStar(w.post_id, w.worker_id, round_half_up(w.average), w.items) for _, w in sorted(best.items())]


def _better(a: WorkerMonth, b: WorkerMonth) -> bool:
    return (a.average, a.items, _desc(a.worker_id)) > (b.average, b.items, _desc(b.worker_id))


def _desc(worker_id: str) -> tuple[int, ...]:
    # Larger tuple for a smaller id, so that one descending comparison does all three keys.
    return (*(-ord(ch) for ch in worker_id), 0)
