"""One handler per command: load, let the domain decide, store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from unionhub_domain import Missing, Rejected, RejectionCode, day_of, same_again

from ..domain import commands, events, model
from .ports import UnitOfWork


@dataclass(frozen=True)
class Dependencies:
    now: Callable[[], datetime]
    deadline: timedelta  # due_at = submitted_at + deadline


async def submit_opinion(cmd: commands.SubmitOpinion, uow: UnitOfWork, deps: Dependencies) -> None:
    """Routes an opinion to the union its member was in when submitting it."""
    sub = cmd.submission
    await uow.clock.advance(sub.submitted_at)
    if earlier := await uow.opinions.get(sub.opinion_id):
        same_again(earlier, {f: getattr(sub, f) for f in _SUBMITTED}, f"opinion {sub.opinion_id}")
        earlier.events += [
            events.OpinionReceived(sub),
            events.OpinionAssigned(  # the same again: answers again
                sub.opinion_id, earlier.union_id, earlier.due_at, sub.command_id, sub.command_source
            ),
        ]
        return
    union_id = await uow.membership.union_on(sub.member_id, day_of(sub.submitted_at))
    if union_id is None:  # membership's events may be on their way: held, not rejected yet
        raise Missing(
            f"member:{sub.member_id}",
            RejectionCode.NOT_A_MEMBER,
            f"{sub.member_id} was not an active member of a union when submitting",
        )
    await uow.opinions.add(model.Opinion.assign(sub, union_id, deps.deadline))


_SUBMITTED = ("member_id", "channel", "text", "submitted_at", "campaign_id", "home_id", "category")


async def _opinion(uow: UnitOfWork, opinion_id: str) -> model.Opinion:
    opinion = await uow.opinions.get(opinion_id)
    if opinion is None:
        raise Rejected(RejectionCode.NOT_FOUND, f"opinion {opinion_id} is not known (or still waits for membership)")
    return opinion


async def respond_opinion(cmd: commands.RespondOpinion, uow: UnitOfWork, deps: Dependencies) -> None:
    """Records a cadre's answer; only a cadre of the assigned union may answer."""
    await uow.clock.advance(cmd.responded_at)
    opinion = await _opinion(uow, cmd.opinion_id)
    responder_union = await uow.membership.cadre_union_on(cmd.responder_id, day_of(cmd.responded_at))
    if responder_union != opinion.union_id and opinion.status == model.ASSIGNED:
        raise Missing(
            f"cadre:{cmd.responder_id}", RejectionCode.FORBIDDEN, f"only a cadre of union {opinion.union_id} may answer"
        )
    opinion.respond(cmd.responder_id, responder_union, cmd.text, cmd.responded_at)
    await uow.opinions.save(opinion)


async def rate_opinion(cmd: commands.RateOpinion, uow: UnitOfWork, deps: Dependencies) -> None:
    """The submitting member rates the answer, once."""
    opinion = await _opinion(uow, cmd.opinion_id)
    opinion.rate(cmd.member_id, cmd.satisfaction)
    await uow.opinions.save(opinion)


async def mark_overdue(cmd: commands.MarkOverdue, uow: UnitOfWork, deps: Dependencies) -> None:
    """Flags, once, every opinion not answered by its due time (by business time: the
    latest seen in commands, when the command names no time)."""
    now = cmd.now or await uow.clock.now()
    if now is None:
        return  # no command read yet: no business time
    for opinion in await uow.opinions.due(now):
        opinion.mark_overdue()
        await uow.opinions.save(opinion)


async def log_visit(cmd: commands.LogVisit, uow: UnitOfWork, deps: Dependencies) -> None:
    """Records a cadre's grassroots visit; the same visit again changes nothing, answers again."""
    await uow.clock.advance(cmd.visited_at)
    visit = model.Visit(**vars(cmd))
    if existing := await uow.visits.get(cmd.visit_id):
        same_again(existing, asdict(visit), f"visit {cmd.visit_id}")
    else:
        await uow.visits.add(visit)
    uow.events.append(events.VisitLogged(**vars(cmd)))


async def close_visits_month(cmd: commands.CloseVisitsMonth, uow: UnitOfWork, deps: Dependencies) -> None:
    """Names every full-time cadre under the visit quota for the month, once."""
    full_time = await uow.membership.full_time_cadres()
    misses = model.quota_misses(cmd.month, full_time, await uow.visits.counts(cmd.month))
    if not await uow.visits.close_month(cmd.month):
        raise Rejected(RejectionCode.CLOSED, f"visits of {cmd.month} were checked already")
    uow.events.extend(misses)
    uow.events.append(events.VisitsMonthClosed(cmd.month, len(full_time), len(misses)))
