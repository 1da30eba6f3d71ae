"""SQLAlchemy implementations of evaluation's ports, over the pipeline's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.database import insert_on_conflict, upsert

from ..domain import commands, model
from ..domain.post_star import PostStar, WorkerMonth
from ..domain.scoring import CRITERIA, HomeResult
from ..service_layer import unit_of_work as ports
from . import orm


class Campaigns(ports.AbstractCampaigns):
    """Commands that change a campaign (closing it) lock its row; ratings share that lock
    (`CachedCampaigns`), so a close waits for the ratings being written and a rating read
    after the close sees it closed: none lands in a campaign whose results are computed."""

    _shared_lock = False

    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self._session = session

    async def _get(self, campaign_id: str) -> model.Campaign | None:
        query = select(orm.campaigns).where(orm.campaigns.c.campaign_id == campaign_id)
        row = (await self._session.execute(query.with_for_update(read=self._shared_lock))).mappings().first()
        return model.Campaign(**{**row, "home_ids": tuple(row["home_ids"])}) if row else None

    def _row(self, campaign: model.Campaign) -> dict[str, Any]:
        return {c.name: getattr(campaign, c.name) for c in orm.campaigns.columns}

    async def _add(self, campaign: model.Campaign) -> None:
        await self._session.execute(insert(orm.campaigns).values(self._row(campaign)))

    async def save(self, campaign: model.Campaign) -> None:
        await self._session.execute(
            update(orm.campaigns).where(orm.campaigns.c.campaign_id == campaign.campaign_id)
            .values(status=campaign.status))


class Ratings(ports.AbstractRatings):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def put(self, rating: commands.SubmitRating, value: Fraction) -> None:
        await self.write_latest([rating_row(rating)])

    async def write_latest(self, rows: list[dict[str, Any]]) -> None:
        """Stores each rating unless one submitted later is stored: decided by the database,
        at write time, so a concurrent writer's newer rating is never overwritten."""
        statement = insert_on_conflict(self._session, orm.ratings)
        statement = statement.on_conflict_do_update(
            index_elements=["campaign_id", "home_id", "rater_kind", "rater_id"],
            set_={c: statement.excluded[c] for c in ("score_sum", "scores", "submitted_at", "command_id")},
            where=orm.ratings.c.submitted_at <= statement.excluded.submitted_at)
        await self._session.execute(statement, rows)

    async def values(self, campaign_id: str) -> dict[str, dict[str, list[Fraction]]]:
        r = orm.ratings.c
        rows = await self._session.execute(
            select(r.home_id, r.rater_kind, r.score_sum).where(r.campaign_id == campaign_id))
        found: dict[str, dict[str, list[Fraction]]] = {}
        for home_id, kind, score_sum in rows:
            found.setdefault(home_id, {}).setdefault(kind, []).append(Fraction(score_sum, len(CRITERIA)))
        return found

    async def audit(self, rating: commands.SubmitRating, outcome: str, code: str | None, reason: str | None,
                    at: datetime) -> None:
        await self._session.execute(insert(orm.rating_audit).values(
            command_id=rating.command_id, campaign_id=rating.campaign_id, home_id=rating.home_id,
            rater_kind=rating.rater_kind, rater_id=rating.rater_id, outcome=outcome, code=code, reason=reason, at=at))


def rating_row(rating: commands.SubmitRating) -> dict[str, Any]:
    return {"campaign_id": rating.campaign_id, "home_id": rating.home_id, "rater_kind": rating.rater_kind,
            "rater_id": rating.rater_id, "score_sum": sum(rating.scores[c] for c in CRITERIA),
            "scores": rating.scores, "submitted_at": rating.submitted_at, "command_id": rating.command_id}


class Membership(ports.AbstractMembership):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def union_on(self, member_id: str, day: date) -> str | None:
        return await orm.membership_view.union_on(self._session, member_id, day)

    async def home_union(self, home_id: str) -> str | None:
        h = orm.membership_view.homes.c
        return await self._session.scalar(select(h.union_id).where(h.home_id == home_id))


class Results(ports.AbstractResults):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def save(self, campaign_id: str, results: Sequence[HomeResult]) -> None:
        if results:
            await self._session.execute(insert(orm.results), [{"campaign_id": campaign_id, **asdict(r)} for r in results])


class PostStars(ports.AbstractPostStars):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def worker_months(self, month: str, post_id: str | None) -> list[WorkerMonth]:
        w = orm.worker_months.c
        query = select(w.post_id, w.worker_id, w.item_count, w.score_sum).where(w.month == month)
        if post_id is not None:
            query = query.where(w.post_id == post_id)
        return [WorkerMonth(*row) for row in await self._session.execute(query)]

    async def awarded_posts(self, month: str) -> set[str]:
        s = orm.post_stars.c
        return set((await self._session.execute(select(s.post_id).where(s.month == month))).scalars())

    async def award(self, month: str, star: PostStar) -> None:
        await self._session.execute(insert(orm.post_stars).values(
            month=month, post_id=star.post_id, worker_id=star.worker_id, average=star.average, item_count=star.items))


class Studios(ports.AbstractStudios):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def put(self, assessment: commands.AssessStudio, reward_cny: int) -> None:
        await upsert(self._session, orm.studio_rewards, {**asdict(assessment), "reward_cny": reward_cny})


class SqlAlchemyUnitOfWork(ports.AbstractUnitOfWork):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self.session = session
        self.campaigns = Campaigns(session)
        self.ratings = Ratings(session)
        self.membership = Membership(session)
        self.results = Results(session)
        self.post_stars = PostStars(session)
        self.studios = Studios(session)
