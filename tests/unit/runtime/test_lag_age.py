"""Lag in time: a reading cut short never lowers the figure the lag alert watches."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from unionhub_runtime.lag import Lag, LagMonitor
from unionhub_runtime.settings import KafkaSettings


def test_a_reading_out_of_time_keeps_the_older_age_and_a_complete_one_replaces_it() -> None:
    registry = CollectorRegistry()
    monitor = LagMonitor(KafkaSettings(), [], Gauge("m", "m", registry=registry), Gauge("s", "s", registry=registry), 5)
    assert monitor._age("t", "g", Lag(10, 300.0)) == 300.0
    assert monitor._age("t", "g", Lag(12, 0.0, complete=False)) == 300.0  # slow broker: no read in time
    assert monitor._age("t", "g", Lag(12, 420.0, complete=False)) == 420.0  # a lower bound above it
    assert monitor._age("t", "g", Lag(0, 0.0)) == 0.0  # caught up, read in full
    assert monitor._age("other", "g", Lag(3, 0.0, complete=False)) == 0.0
