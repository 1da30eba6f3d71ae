"""Each service's migrations build exactly the schema its code declares, on both databases,
and an upgrade keeps what the inbox already knew."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, select, text

import evaluation.adapters.orm
import evaluation.bootstrap
import feedback.adapters.orm
import feedback.bootstrap
import membership.adapters.orm
import membership.bootstrap
from unionhub_contracts import decode
from unionhub_runtime import inbox
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.migrations import RUNTIME_HISTORY, RUNTIME_VERSION_TABLE, config, upgrade_async
from unionhub_runtime.tables import add_runtime_tables

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
                context = MigrationContext.configure(
                    sync_connection,
                    opts={  # type: ignore[arg-type]
                        "compare_type": True,
                        "include_name": lambda name, kind, _: not (kind == "table" and name == RUNTIME_VERSION_TABLE),
                    },
                )
                return list(compare_metadata(context, metadata))

            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_the_migrated_schema_is_the_declared_one(service: str, database_url: str) -> None:
    migrations, metadata = SERVICES[service]
    await upgrade_async(migrations, database_url)
    assert await differences(database_url, metadata) == []


async def test_the_runtime_history_alone_builds_the_runtime_tables_as_declared(database_url: str) -> None:
    """A new service's history need not make the inbox, outbox and held commands: the
    runtime's does, and they come out as `unionhub_runtime.tables` declares them."""
    await asyncio.to_thread(command.upgrade, config(RUNTIME_HISTORY, database_url, RUNTIME_VERSION_TABLE), "head")
    declared = MetaData()
    add_runtime_tables(declared)
    assert await differences(database_url, declared) == []


async def test_a_message_applied_before_the_inbox_kept_sources_is_still_applied_once(database_url: str) -> None:
    migrations: Path = membership.bootstrap.MIGRATIONS
    await upgrade_async(migrations, database_url, "0002")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO inbox (consumer, message_id, received_at) VALUES ('membership.commands', 'old-1', :at)"
                ),
                {"at": datetime.now(UTC)},
            )
        await upgrade_async(migrations, database_url)
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            fresh = await inbox.claim(
                session,
                membership.adapters.orm.runtime_tables,
                "membership.commands",
                [("hr-system/fengtai", "old-1"), ("hr-system/fengtai", "new-1"), ("hr-system/haidian", "new-1")],
            )
        assert fresh == {("hr-system/fengtai", "new-1"), ("hr-system/haidian", "new-1")}
    finally:
        await engine.dispose()


WAITING = {
    "evaluation": (
        "INSERT INTO pending_ratings (command_id, campaign_id, home_id, rater_kind, rater_id, scores, "
        "submitted_at, deadline) VALUES ('r-1', 'c-1', 'h-1', 'member', 'm-1', :scores, :at, :deadline)",
        "evaluation.commands",
        "rating.submit",
        "member:m-1",
        {"rating:c-1/h-1/member/m-1", "campaign:c-1"},
    ),
    "feedback": (
        "INSERT INTO parked_opinions (opinion_id, command_id, command_source, member_id, channel, text, "
        "submitted_at, deadline) VALUES ('o-1', 'r-1', 'rating-page', 'm-1', 'hotline', 'too hot', :at, "
        ":deadline)",
        "feedback.commands",
        "opinion.submit",
        "member:m-1",
        {"opinion_id:o-1"},
    ),
}


@pytest.mark.parametrize("service", sorted(WAITING))
async def test_commands_waiting_before_the_upgrade_become_held_commands(service: str, database_url: str) -> None:
    migrations, metadata = SERVICES[service]
    insert_waiting, consumer, command_type, waiting_for, lanes = WAITING[service]
    submitted = datetime(2018, 5, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    deadline = datetime(2018, 5, 20, 2, 10, tzinfo=UTC)
    await upgrade_async(migrations, database_url, "0004")
    engine = create_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        async with engine.begin() as connection:
            stored = {"at": submitted, "deadline": deadline}
            if sqlite:  # as the old code stored them: naive UTC
                stored = {k: v.replace(tzinfo=None) for k, v in stored.items()}
            await connection.execute(
                text(insert_waiting),
                {
                    **stored,
                    "scores": '{"organisation": 80, "facilities": '
                    '80, "work": 80, "labour_relations": 80, "finances": 80}',
                },
            )
            await connection.execute(
                text(
                    "INSERT INTO mv_members (member_id, union_id, status) VALUES "
                    "('m-1', 'u-1', 'active'), ('m-2', 'u-1', 'left')"
                )
            )
        await upgrade_async(migrations, database_url)
        tables = metadata.tables
        async with engine.connect() as connection:
            [held] = (await connection.execute(select(tables["held_commands"]))).mappings().all()
            held_lanes = set((await connection.execute(select(tables["held_lanes"].c.lane))).scalars())
            history = (
                await connection.execute(
                    select(*[tables["mv_member_history"].c[k] for k in ("member_id", "union_id", "from_on", "to_on")])
                )
            ).all()
        event = decode(consumer, held["value"])
        assert (event.id, event.type, held["waiting_for"], held["expires_at"]) == (
            "r-1",
            command_type,
            waiting_for,
            deadline,
        )
        assert event.data.submitted_at == submitted and held_lanes == lanes
        assert [tuple(h) for h in history] == [("m-1", "u-1", date.min, None)]  # active members: one open stay
    finally:
        await engine.dispose()
