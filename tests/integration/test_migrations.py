"""Each service's migrations build exactly the schema its code declares, on both databases,
and an upgrade keeps what the inbox already knew."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text

import evaluation.adapters.orm
import evaluation.bootstrap
import feedback.adapters.orm
import feedback.bootstrap
import membership.adapters.orm
import membership.bootstrap
from unionhub_runtime import inbox
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.migrations import upgrade_async

pytestmark = pytest.mark.integration

SERVICES = {
    "membership": (membership.bootstrap.MIGRATIONS, membership.adapters.orm.metadata),
    "evaluation": (evaluation.bootstrap.MIGRATIONS, evaluation.adapters.orm.metadata),
    "feedback": (feedback.bootstrap.MIGRATIONS, feedback.adapters.orm.metadata),
}


async def differences(url: str, metadata: MetaData) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            def compare(sync_connection: object) -> list[object]:
                context = MigrationContext.configure(sync_connection, opts={"compare_type": True})  # type: ignore[arg-type]
                return list(compare_metadata(context, metadata))

            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_the_migrated_schema_is_the_declared_one(service: str, database_url: str) -> None:
    migrations, metadata = SERVICES[service]
    await upgrade_async(migrations, database_url)
    assert await differences(database_url, metadata) == []


async def test_a_message_applied_before_the_inbox_kept_sources_is_still_applied_once(database_url: str) -> None:
    migrations: Path = membership.bootstrap.MIGRATIONS
    await upgrade_async(migrations, database_url, "0002")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO inbox (consumer, message_id, received_at) VALUES "
                                          "('membership.commands', 'old-1', :at)"), {"at": datetime.now(UTC)})
        await upgrade_async(migrations, database_url)
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            fresh = await inbox.claim(session, membership.adapters.orm.runtime_tables, "membership.commands",
                                      [("hr-system/fengtai", "old-1"), ("hr-system/fengtai", "new-1"),
                                       ("hr-system/haidian", "new-1")])
        assert fresh == {("hr-system/fengtai", "new-1"), ("hr-system/haidian", "new-1")}
    finally:
        await engine.dispose()
