"""One handler per command: load, let the domain decide, store."""

from __future__ import annotations

from unionhub_domain import Missing, Rejected, RejectionCode

from ..domain import commands, events, model
from .ports import UnitOfWork


async def _require_union(uow: UnitOfWork, union_id: str) -> model.Union:
    union = await uow.unions.get(union_id)
    if union is None:  # it may be on its way on another partition: held, not rejected yet
        raise Missing(f"union:{union_id}", RejectionCode.NOT_FOUND, f"union {union_id} is not registered")
    return union


async def register_union(cmd: commands.RegisterUnion, uow: UnitOfWork) -> None:
    """Registers a union under its parent."""
    if existing := await uow.unions.get(cmd.union_id):
        return model.register_again(existing, cmd, f"union {cmd.union_id}", events.UnionRegistered(**vars(cmd)))
    parent = await uow.unions.get(cmd.parent_id) if cmd.parent_id else None
    await uow.unions.add(model.Union.register(cmd, parent))


async def enroll_member(cmd: commands.EnrollMember, uow: UnitOfWork) -> None:
    """Enrols a new member, or re-enrols one who left."""
    await _require_union(uow, cmd.union_id)
    member = await uow.members.get(cmd.member_id)
    if member is None:
        await uow.members.add(model.Member.enroll(cmd))
    elif member.reenroll(cmd):
        await uow.members.save(member)


async def _require_member(uow: UnitOfWork, member_id: str) -> model.Member:
    member = await uow.members.get(member_id)
    if member is None:
        raise Rejected(RejectionCode.NOT_FOUND, f"member {member_id} is not registered")
    return member


async def leave_member(cmd: commands.LeaveMember, uow: UnitOfWork) -> None:
    """Records that an active member left their union."""
    member = await _require_member(uow, cmd.member_id)
    member.leave(cmd)
    await uow.members.save(member)


async def transfer_member(cmd: commands.TransferMember, uow: UnitOfWork) -> None:
    """Moves an active member to another registered union."""
    member = await _require_member(uow, cmd.member_id)
    await _require_union(uow, cmd.to_union_id)
    member.transfer(cmd)
    await uow.members.save(member)


async def register_home(cmd: commands.RegisterHome, uow: UnitOfWork) -> None:
    """Registers a workers' home of a union."""
    if existing := await uow.homes.get(cmd.home_id):
        return model.register_again(existing, cmd, f"home {cmd.home_id}", events.HomeRegistered(**vars(cmd)))
    await _require_union(uow, cmd.union_id)
    await uow.homes.add(model.Home.register(cmd))


async def register_station(cmd: commands.RegisterStation, uow: UnitOfWork) -> None:
    """Registers a warm station of a union."""
    if existing := await uow.stations.get(cmd.station_id):
        return model.register_again(existing, cmd, f"station {cmd.station_id}", events.StationRegistered(**vars(cmd)))
    await _require_union(uow, cmd.union_id)
    await uow.stations.add(model.Station.register(cmd))


async def appoint_cadre(cmd: commands.AppointCadre, uow: UnitOfWork) -> None:
    """Appoints an active member of a union as one of its cadres."""
    if existing := await uow.cadres.get(cmd.member_id):
        return model.register_again(existing, cmd, f"cadre {cmd.member_id}", events.CadreAppointed(**vars(cmd)))
    await _require_union(uow, cmd.union_id)
    member = await uow.members.get(cmd.member_id)
    await uow.cadres.add(model.Cadre.appoint(cmd, member))
