"""Business gauges labelled by district, a free text of the commands: however many districts
there are, each gauge keeps a bounded number of series (issue 14, finding 9), and what it
drops is summed, not lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

from prometheus_client import CollectorRegistry
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

import feedback.bootstrap
import membership.bootstrap
from feedback.adapters import orm as feedback_orm
from feedback.adapters.metrics import FeedbackMetrics
from membership.adapters import orm as membership_orm
from membership.adapters.metrics import MembershipGauges
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.metrics import MAX_LABEL_VALUES
from unionhub_runtime.migrations import upgrade_async

DISTRICTS = 10_000


def series(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == name
    }


@asynccontextmanager
async def migrated(service: ModuleType, tmp_path: Path) -> AsyncIterator[AsyncSession]:
    """A session in a transaction on a fresh SQLite database migrated for `service`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'labels.db'}"
    await upgrade_async(service.MIGRATIONS, url)
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


async def test_ten_thousand_districts_make_a_bounded_number_of_membership_series(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    gauges = MembershipGauges(registry)
    async with migrated(membership.bootstrap, tmp_path) as session:
        await session.execute(
            insert(membership_orm.unions),
            [
                {
                    "union_id": f"u-{n}",
                    "name": "u",
                    "level": "grassroots",
                    "district": f"District {n}",
                    "founded_on": date(2000, 1, 1),
                }
                for n in range(DISTRICTS)
            ],
        )
        await session.execute(
            insert(membership_orm.members),
            [
                {"member_id": f"m-{n}-{k}", "union_id": f"u-{n}", "status": "active", "joined_on": date(2018, 1, 1)}
                for n in range(DISTRICTS)
                for k in range(1 + n % 3)
            ],
        )
        await gauges.refresh(session)
    members = series(registry, "membership_active_members")
    unions = series(registry, "membership_unions")
    assert len(members) <= MAX_LABEL_VALUES + 1 and len(unions) <= MAX_LABEL_VALUES + 1
    assert sum(members.values()) == sum(1 + n % 3 for n in range(DISTRICTS))  # nothing lost
    assert sum(unions.values()) == DISTRICTS
    assert (("district", "(other)"),) in members


async def test_ten_thousand_districts_make_a_bounded_number_of_feedback_series(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)
    at = datetime(2018, 5, 1, tzinfo=UTC)
    async with migrated(feedback.bootstrap, tmp_path) as session:
        await session.execute(
            insert(feedback_orm.membership_view.unions),
            [{"union_id": f"u-{n}", "level": "grassroots", "district": f"District {n}"} for n in range(DISTRICTS)],
        )
        await session.execute(
            insert(feedback_orm.opinions),
            [
                {
                    "opinion_id": f"o-{n}",
                    "member_id": "m",
                    "channel": "hotline",
                    "text": "t",
                    "submitted_at": at,
                    "union_id": f"u-{n}",
                    "due_at": at,
                    "status": "assigned",
                    "overdue": True,
                }
                for n in range(DISTRICTS)
            ],
        )
        await metrics.refresh(session)
    for name in ("feedback_open_opinions", "feedback_overdue_open_opinions"):
        found = series(registry, name)
        assert len(found) <= MAX_LABEL_VALUES + 1 and sum(found.values()) == DISTRICTS
