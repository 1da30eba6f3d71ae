"""Group commit in membership: one unit of work per batch, a rejected command leaves no trace."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from membership.adapters import orm
from membership.adapters.unit_of_work import SqlAlchemyUnitOfWork
from membership.bootstrap import MIGRATIONS
from membership.domain import commands
from membership.service_layer import messagebus
from unionhub_domain import Rejected
from unionhub_runtime import database
from unionhub_runtime.migrations import upgrade_async

FED = commands.RegisterUnion("bj", "Beijing", "federation", None, None, None, date(1949, 1, 1))
DISTRICT = commands.RegisterUnion("ft", "Fengtai", "district", "bj", "Fengtai", None, date(1950, 1, 1))
SHOP = commands.RegisterUnion("ft-1", "Steel", "grassroots", "ft", "Fengtai", "independent", date(2018, 2, 1))


async def apply_batch(uow: SqlAlchemyUnitOfWork, batch: list[commands.Command]) -> list[str]:
    """What the pipeline does with a batch scope; returns each command's outcome."""
    outcomes = []
    await uow.preload(batch)
    for command in batch:
        await uow.begin(command)
        try:
            events = await messagebus.handle(command, uow)
        except Rejected as rejection:
            await uow.discard()
            outcomes.append(rejection.code)
            continue
        await uow.keep()
        outcomes.append(",".join(type(e).__name__ for e in events) or "no-op")
    await uow.flush()
    return outcomes


@pytest.mark.integration
async def test_a_batch_sees_its_own_changes_and_drops_only_the_rejected_ones(database_url: str) -> None:
    await upgrade_async(MIGRATIONS, database_url)
    engine = database.create_engine(database_url)
    sessions = database.session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            outcomes = await apply_batch(
                SqlAlchemyUnitOfWork(session),
                [
                    FED,
                    DISTRICT,
                    SHOP,
                    commands.EnrollMember("m-1", "ft-1", date(2018, 3, 1), display_name="Sun Li"),
                    commands.TransferMember("m-1", "nowhere", date(2018, 4, 1)),  # rejected: leaves no trace
                    commands.AppointCadre("m-1", "ft-1", "chair", date(2018, 4, 2)),
                    commands.LeaveMember("m-1", date(2018, 9, 1), "retired"),
                    commands.LeaveMember("m-1", date(2018, 9, 2), "again"),  # sees the leave above
                    commands.EnrollMember("m-1", "ft-1", date(2018, 10, 1)),  # reinstated in the same batch
                    commands.RegisterUnion("bj", "Renamed", "federation", None, None, None, date(1949, 1, 1)),
                ],
            )
        assert outcomes == ["UnionRegistered"] * 3 + [
            "MemberEnrolled",
            "not_found",
            "CadreAppointed",
            "MemberLeft",
            "not_active",
            "MemberEnrolled",
            "conflict",
        ]
        async with sessions() as session:
            member = (await session.execute(select(orm.members).where(orm.members.c.member_id == "m-1"))).one()
            history = (
                (await session.execute(select(orm.member_history.c.kind).order_by(orm.member_history.c.id)))
                .scalars()
                .all()
            )
            union = (await session.execute(select(orm.unions.c.name).where(orm.unions.c.union_id == "bj"))).scalar()
        assert (member.status, member.union_id, member.left_on, member.display_name) == (
            "active",
            "ft-1",
            None,
            "Sun Li",
        )
        assert history == ["enrolled", "left", "reinstated"]
        assert union == "Beijing"
    finally:
        await engine.dispose()
