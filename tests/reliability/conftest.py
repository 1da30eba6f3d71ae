"""Fixtures of the fault-injection suite: a fresh PostgreSQL database and a fleet of
membership processes on it (tests/conftest.py provides Kafka)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _pg_execute
from tests.reliability.harness import Fleet
from unionhub_runtime.settings import KafkaSettings


@pytest.fixture
async def pg_url(postgres_admin_url: str) -> AsyncIterator[str]:
    name = f"rel_{uuid.uuid4().hex[:12]}"
    await _pg_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    await _pg_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fleet(kafka: KafkaSettings, pg_url: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(kafka.bootstrap_servers, kafka.topic_prefix, pg_url, tmp_path)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def fleet_of(kafka: KafkaSettings, pg_url: str, tmp_path: Path) -> Iterator[Callable[[str], Fleet]]:
    """Fleets of a named service, every instance stopped when the test ends (a test that
    fails or ends early left its service processes running after the suite)."""
    made: list[Fleet] = []

    def make(service: str) -> Fleet:
        made.append(Fleet(kafka.bootstrap_servers, kafka.topic_prefix, pg_url, tmp_path, service=service))
        return made[-1]

    yield make
    for fleet in made:
        fleet.stop_all()
