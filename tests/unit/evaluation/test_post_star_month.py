"""The per-hour cache of `month_of` gives exactly what converting each instant gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from evaluation.domain.post_star import month_of
from unionhub_domain import SHANGHAI

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


def shanghai_month(instant: datetime) -> str:
    local = instant.astimezone(SHANGHAI)
    return f"{local.year:04d}-{local.month:02d}"


@given(instants)
def test_the_month_is_the_month_in_shanghai(instant: datetime) -> None:
    assert month_of(instant) == shanghai_month(instant)


def test_month_edges_in_shanghai_time() -> None:
    assert month_of(datetime(2018, 5, 31, 15, 59, 59, 999999, tzinfo=UTC)) == "2018-05"
    assert month_of(datetime(2018, 5, 31, 16, 0, tzinfo=UTC)) == "2018-06"
    assert month_of(datetime(1988, 4, 30, 15, 30, tzinfo=UTC)) == "1988-05"  # summer time (UTC+9) that year


def test_an_instant_before_1970_just_before_a_month_is_in_that_month() -> None:
    # Seconds before the epoch are negative: truncating them moved such an instant to the next hour.
    assert month_of(datetime(1969, 11, 30, 15, 59, 59, 500000, tzinfo=UTC)) == "1969-11"
    # Before 1901 Shanghai kept its local mean time, 8:05:43 ahead: months began off the hour.
    assert month_of(datetime(1900, 1, 31, 15, 54, 16, 999999, tzinfo=UTC)) == "1900-01"
    assert month_of(datetime(1900, 1, 31, 15, 58, tzinfo=UTC)) == "1900-02"
    assert month_of(datetime(1, 1, 31, 15, 54, 16, 999999, tzinfo=UTC)) == "0001-01"  # and written with its zeros


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
)
def test_the_month_is_the_month_in_shanghai_at_any_time(instant: datetime) -> None:
    assert month_of(instant) == shanghai_month(instant)
