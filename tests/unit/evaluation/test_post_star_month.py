"""The per-hour cache of `month_of` gives exactly what converting each instant gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from evaluation.domain.post_star import SHANGHAI, month_of

instants = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [
            UTC,
            timezone(timedelta(hours=8)),
            timezone(timedelta(hours=-5)),
            timezone(timedelta(hours=5, minutes=30)),
            SHANGHAI,
        ]
    ),
)


@given(instants)
def test_the_month_is_the_month_in_shanghai(instant: datetime) -> None:
    assert month_of(instant) == instant.astimezone(SHANGHAI).strftime("%Y-%m")


def test_month_edges_in_shanghai_time() -> None:
    assert month_of(datetime(2018, 5, 31, 15, 59, 59, 999999, tzinfo=UTC)) == "2018-05"
    assert month_of(datetime(2018, 5, 31, 16, 0, tzinfo=UTC)) == "2018-06"
    assert month_of(datetime(1988, 4, 30, 15, 30, tzinfo=UTC)) == "1988-05"  # summer time (UTC+9) that year
