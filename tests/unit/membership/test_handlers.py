"""Every membership rule, driven through the message bus with an in-memory unit of work."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date

import pytest

from membership.adapters import integration
from membership.domain import commands, events
from membership.service_layer import messagebus
from unionhub_domain import Rejected

from .fakes import FakeUnitOfWork

FED = commands.RegisterUnion("bj", "Beijing", "federation", None, None, None, date(1949, 1, 1))
DISTRICT = commands.RegisterUnion("ft", "Fengtai", "district", "bj", "Fengtai", None, date(1950, 1, 1))
SHOP = commands.RegisterUnion("ft-1", "Steel", "grassroots", "ft", "Fengtai", "independent", date(2018, 2, 1))
OTHER = commands.RegisterUnion("ft-2", "Bakery", "grassroots", "ft", "Fengtai", "joint", date(2018, 3, 1))


async def given(*cmds: commands.Command) -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    for cmd in cmds:
        await messagebus.handle(cmd, uow)
    return uow.fresh()


async def rejected(uow: FakeUnitOfWork, cmd: commands.Command) -> str:
    with pytest.raises(Rejected) as caught:
        await messagebus.handle(cmd, uow)
    return caught.value.code


def enroll(member: str = "m-1", union: str = "ft-1", on: date = date(2018, 3, 1)) -> commands.EnrollMember:
    return commands.EnrollMember(member, union, on, display_name="Zhang Wei")


async def test_a_union_hierarchy_registers_from_the_city_down() -> None:
    uow = FakeUnitOfWork()
    for cmd in (FED, DISTRICT, SHOP):
        assert [type(e) for e in await messagebus.handle(cmd, uow)] == [events.UnionRegistered]
    assert set(uow.unions.rows) == {"bj", "ft", "ft-1"}


async def test_registering_the_same_union_again_changes_nothing_and_answers_again() -> None:
    uow = await given(FED)
    before = dict(uow.unions.rows)
    assert await messagebus.handle(FED, uow) == [events.UnionRegistered(**vars(FED))]
    assert uow.unions.rows == before


async def test_registering_an_existing_union_with_other_data_is_a_conflict() -> None:
    uow = await given(FED)
    changed = commands.RegisterUnion("bj", "Other name", "federation", None, None, None, date(1949, 1, 1))
    assert await rejected(uow, changed) == "conflict"


async def test_a_union_whose_parent_is_unknown_is_rejected() -> None:
    assert await rejected(await given(FED), SHOP) == "not_found"


async def test_a_grassroots_union_directly_under_the_federation_breaks_the_hierarchy() -> None:
    wrong = commands.RegisterUnion("x", "X", "grassroots", "bj", "Fengtai", "joint", date(2018, 1, 1))
    assert await rejected(await given(FED), wrong) == "hierarchy"


async def test_a_grassroots_union_must_be_in_its_parents_district() -> None:
    wrong = commands.RegisterUnion("x", "X", "grassroots", "ft", "Chaoyang", "joint", date(2018, 1, 1))
    assert await rejected(await given(FED, DISTRICT), wrong) == "hierarchy"


async def test_enrolling_records_history_and_publishes_no_personal_data() -> None:
    uow = await given(FED, DISTRICT, SHOP)
    published = await messagebus.handle(enroll(), uow)
    assert published == [events.MemberEnrolled("m-1", "ft-1", date(2018, 3, 1))]
    assert uow.members.rows["m-1"].display_name == "Zhang Wei"
    assert [(h.kind, h.union_id) for h in uow.members.history] == [("enrolled", "ft-1")]


async def test_enrolling_into_an_unregistered_union_is_rejected() -> None:
    assert await rejected(await given(FED), enroll(union="nowhere")) == "not_found"


async def test_a_member_is_active_in_at_most_one_union() -> None:
    uow = await given(FED, DISTRICT, SHOP, OTHER, enroll())
    assert await rejected(uow, enroll(union="ft-2")) == "already_active"


async def test_the_same_enrolment_twice_changes_nothing_and_answers_again() -> None:
    uow = await given(FED, DISTRICT, SHOP, enroll())
    assert await messagebus.handle(enroll(), uow) == [events.MemberEnrolled("m-1", "ft-1", date(2018, 3, 1))]
    assert [h.kind for h in uow.members.history] == ["enrolled"]


async def test_leaving_needs_an_active_member() -> None:
    uow = await given(FED, DISTRICT, SHOP, enroll())
    leave = commands.LeaveMember("m-1", date(2018, 9, 1), "retired")
    assert [type(e) for e in await messagebus.handle(leave, uow)] == [events.MemberLeft]
    assert await rejected(uow.fresh(), leave) == "not_active"
    assert await rejected(uow.fresh(), commands.LeaveMember("ghost", date(2018, 9, 1), "x")) == "not_found"


async def test_the_reason_for_leaving_is_kept_inside_and_not_published() -> None:
    # Free text about a person (issue 14, finding 10): member.left carried it to every consumer.
    uow = await given(FED, DISTRICT, SHOP, enroll())
    (left,) = await messagebus.handle(commands.LeaveMember("m-1", date(2018, 9, 1), "my foreman bullied me"), uow)
    assert "my foreman" not in repr(left) and "my foreman" not in str(integration.to_emit(left).data.model_dump())
    assert uow.members.rows["m-1"].left_reason == "my foreman bullied me"


async def test_leaving_before_joining_is_rejected() -> None:
    uow = await given(FED, DISTRICT, SHOP, enroll())
    assert await rejected(uow, commands.LeaveMember("m-1", date(2018, 1, 1), "x")) == "date_order"


async def test_a_transfer_carries_source_and_target_and_appends_history() -> None:
    uow = await given(FED, DISTRICT, SHOP, OTHER, enroll())
    published = await messagebus.handle(commands.TransferMember("m-1", "ft-2", date(2018, 7, 1)), uow)
    assert published == [events.MemberTransferred("m-1", "ft-1", "ft-2", date(2018, 7, 1))]
    assert uow.members.rows["m-1"].union_id == "ft-2"
    assert [h.kind for h in uow.members.history] == ["enrolled", "transferred_out", "transferred_in"]


async def test_a_transfer_needs_an_active_member_and_a_registered_other_union() -> None:
    uow = await given(FED, DISTRICT, SHOP, enroll())
    assert await rejected(uow, commands.TransferMember("m-1", "nowhere", date(2018, 7, 1))) == "not_found"
    assert await rejected(uow.fresh(), commands.TransferMember("m-1", "ft-1", date(2018, 7, 1))) == "same_union"
    gone = await given(FED, DISTRICT, SHOP, OTHER, enroll(), commands.LeaveMember("m-1", date(2018, 5, 1), "x"))
    assert await rejected(gone, commands.TransferMember("m-1", "ft-2", date(2018, 7, 1))) == "not_active"


async def test_a_member_who_left_can_enrol_again_and_is_reinstated() -> None:
    uow = await given(FED, DISTRICT, SHOP, OTHER, enroll(), commands.LeaveMember("m-1", date(2018, 5, 1), "moved"))
    published = await messagebus.handle(enroll(union="ft-2", on=date(2018, 8, 1)), uow)
    assert published == [events.MemberEnrolled("m-1", "ft-2", date(2018, 8, 1))]
    member = uow.members.rows["m-1"]
    assert (member.status, member.union_id, member.left_on) == ("active", "ft-2", None)
    assert [h.kind for h in uow.members.history] == ["enrolled", "left", "reinstated"]


async def test_re_enrolling_before_the_last_leaving_date_is_rejected() -> None:
    uow = await given(FED, DISTRICT, SHOP, enroll(), commands.LeaveMember("m-1", date(2018, 5, 1), "moved"))
    assert await rejected(uow, enroll(on=date(2018, 4, 1))) == "date_order"


@pytest.mark.parametrize(
    "cmd",
    [
        commands.RegisterHome("h-1", "ft-1", "Home", "enterprise", date(2018, 5, 1)),
        commands.RegisterStation("s-1", "ft-1", "Station", ("water", "rest"), date(2018, 6, 1)),
    ],
)
async def test_homes_and_stations_belong_to_a_registered_union_and_register_once(cmd: commands.Command) -> None:
    uow = await given(FED, DISTRICT, SHOP)
    first = await messagebus.handle(cmd, uow)
    assert len(first) == 1
    assert await messagebus.handle(cmd, uow.fresh()) == first  # the same again: answered, not stored twice
    id_field = fields(cmd)[0].name
    assert await rejected(uow.fresh(), replace(cmd, union_id="ft-2")) == "conflict"
    assert await rejected(uow.fresh(), replace(cmd, union_id="nowhere", **{id_field: "new"})) == "not_found"


async def test_a_cadre_must_be_an_active_member_of_that_union() -> None:
    uow = await given(FED, DISTRICT, SHOP, OTHER, enroll())
    chair = commands.AppointCadre("m-1", "ft-1", "chair", date(2018, 4, 1))
    assert [type(e) for e in await messagebus.handle(chair, uow)] == [events.CadreAppointed]
    assert (
        await rejected(uow.fresh(), commands.AppointCadre("m-1", "ft-1", "vice_chair", date(2018, 4, 1))) == "conflict"
    )
    elsewhere = await given(FED, DISTRICT, SHOP, OTHER, enroll())
    assert await rejected(elsewhere, commands.AppointCadre("m-1", "ft-2", "chair", date(2018, 4, 1))) == "not_a_member"
    assert (
        await rejected(elsewhere.fresh(), commands.AppointCadre("ghost", "ft-1", "chair", date(2018, 4, 1)))
        == "not_a_member"
    )


async def test_a_rejected_command_changes_nothing() -> None:
    uow = await given(FED, DISTRICT, SHOP, enroll())
    before = dict(uow.members.rows), list(uow.members.history)
    await rejected(uow, commands.TransferMember("m-1", "nowhere", date(2018, 7, 1)))
    assert (dict(uow.members.rows), list(uow.members.history)) == before
