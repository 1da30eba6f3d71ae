"""SQLAlchemy implementations of evaluation's ports, over the batch's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_membership_view import Stay, union_of_stays
from unionhub_runtime.database import chunks, insert_on_conflict, upsert
from unionhub_runtime.unit_of_work import AbstractRepository, Journal

from ..domain import commands, model
from ..domain.post_star import PostStar, WorkerMonth
from ..domain.scoring import CRITERIA, HomeResult
from ..service_layer import ports
from . import orm

Key = tuple[str, str, str, str]  # campaign, home, rater kind, rater


def _key(rating: commands.SubmitRating) -> Key:
    return (rating.campaign_id, rating.home_id, rating.rater_kind, rating.rater_id)


class Campaigns(AbstractRepository[model.Campaign]):
    """Commands that change a campaign (closing it) lock its row; ratings share that lock
    (`shared`), so a close waits for the ratings being written and a rating read after the
    close sees it closed: none lands in a campaign whose results are computed. Ratings keep
    the campaigns they read for the batch (a rating changes no campaign)."""

    def __init__(self, session: AsyncSession, *, shared: bool) -> None:
        super().__init__()
        self._session, self._shared = session, shared
        self._cache: dict[str, model.Campaign | None] = {}

    async def _get(self, campaign_id: str) -> model.Campaign | None:
        if campaign_id not in self._cache or not self._shared:
            query = select(orm.campaigns).where(orm.campaigns.c.campaign_id == campaign_id)
            row = (await self._session.execute(query.with_for_update(read=self._shared))).mappings().first()
            self._cache[campaign_id] = model.Campaign(**{**row, "home_ids": tuple(row["home_ids"])}) if row else None
        return self._cache[campaign_id]

    async def _add(self, campaign: model.Campaign) -> None:
        row = {c.name: getattr(campaign, c.name) for c in orm.campaigns.columns}
        await self._session.execute(insert(orm.campaigns).values(row))

    async def _save(self, campaign: model.Campaign) -> None:
        await self._session.execute(
            update(orm.campaigns)
            .where(orm.campaigns.c.campaign_id == campaign.campaign_id)
            .values(status=campaign.status)
        )


class Ratings(ports.AbstractRatings):
    """A batch's ratings decided against the latest stored ones (loaded in bulk) and written
    in a few statements; changes go through the unit of work's journal."""

    def __init__(self, session: AsyncSession, journal: Journal) -> None:
        self._session, self._journal = session, journal
        self._latest: dict[Key, datetime | None] = {}  # submitted_at of the stored rating
        self._puts: dict[Key, dict[str, Any]] = {}
        self._audits: list[dict[str, Any]] = []

    async def preload(self, ratings: Iterable[commands.SubmitRating]) -> None:
        keys = sorted({_key(r) for r in ratings} - set(self._latest))
        r = orm.ratings.c
        for chunk in chunks(keys, 400):  # four parameters a key
            rows = await self._session.execute(
                select(r.campaign_id, r.home_id, r.rater_kind, r.rater_id, r.submitted_at).where(
                    tuple_(r.campaign_id, r.home_id, r.rater_kind, r.rater_id).in_(chunk)
                )
            )
            found = {tuple(row[:4]): row[4] for row in rows}
            for key in chunk:
                self._latest[key] = found.get(key)

    async def put(self, rating: commands.SubmitRating, value: Fraction) -> None:
        key = _key(rating)
        if key not in self._latest:
            await self.preload([rating])
        stored = self._latest[key]
        if stored is not None and stored > rating.submitted_at:
            return
        self._journal.set(self._latest, key, rating.submitted_at)
        self._journal.set(self._puts, key, _rating_row(rating))

    async def values(self, campaign_id: str) -> dict[str, dict[str, list[Fraction]]]:
        return await rating_values(self._session, campaign_id)

    async def audit(
        self, rating: commands.SubmitRating, outcome: str, code: str | None, reason: str | None, at: datetime
    ) -> None:
        self._journal.append(
            self._audits,
            {
                "command_id": rating.command_id,
                "campaign_id": rating.campaign_id,
                "home_id": rating.home_id,
                "rater_kind": rating.rater_kind,
                "rater_id": rating.rater_id,
                "outcome": outcome,
                "code": code,
                "reason": reason,
                "at": at,
            },
        )

    async def write(self) -> None:
        if self._puts:
            await self._write_latest(list(self._puts.values()))
        if self._audits:
            await self._session.execute(insert(orm.rating_audit), self._audits)
        self._puts.clear()
        self._audits.clear()

    async def _write_latest(self, rows: list[dict[str, Any]]) -> None:
        """Stores each rating unless one submitted later is stored: decided by the database,
        at write time, so a concurrent writer's newer rating is never overwritten."""
        statement = insert_on_conflict(self._session, orm.ratings)
        statement = statement.on_conflict_do_update(
            index_elements=["campaign_id", "home_id", "rater_kind", "rater_id"],
            set_={c: statement.excluded[c] for c in ("score_sum", "scores", "submitted_at", "command_id")},
            where=orm.ratings.c.submitted_at <= statement.excluded.submitted_at,
        )
        await self._session.execute(statement, rows)


async def rating_values(session: AsyncSession, campaign_id: str) -> dict[str, dict[str, list[Fraction]]]:
    """home -> rater kind -> the values of the stored ratings of a campaign."""
    r = orm.ratings.c
    rows = await session.execute(select(r.home_id, r.rater_kind, r.score_sum).where(r.campaign_id == campaign_id))
    found: dict[str, dict[str, list[Fraction]]] = {}
    for home_id, kind, score_sum in rows:
        found.setdefault(home_id, {}).setdefault(kind, []).append(Fraction(score_sum, len(CRITERIA)))
    return found


def _rating_row(rating: commands.SubmitRating) -> dict[str, Any]:
    return {
        "campaign_id": rating.campaign_id,
        "home_id": rating.home_id,
        "rater_kind": rating.rater_kind,
        "rater_id": rating.rater_id,
        "score_sum": sum(rating.scores[c] for c in CRITERIA),
        "scores": rating.scores,
        "submitted_at": rating.submitted_at,
        "command_id": rating.command_id,
    }


class Membership(ports.AbstractMembership):
    """The view's answers for a batch of ratings: homes and the raters' histories loaded in bulk."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._stays: dict[str, list[Stay]] = {}
        self._homes: dict[str, str | None] = {}

    async def preload(self, member_ids: Iterable[str], home_ids: Iterable[str]) -> None:
        view = orm.membership_view
        h = view.history.c
        for chunk in chunks(sorted(set(member_ids) - set(self._stays))):
            for member_id in chunk:
                self._stays[member_id] = []
            rows = await self._session.execute(
                select(h.member_id, h.union_id, h.from_on, h.to_on).where(h.member_id.in_(chunk))
            )
            for member_id, union_id, from_on, to_on in rows:
                self._stays[member_id].append((union_id, from_on, to_on))
        for chunk in chunks(sorted(set(home_ids) - set(self._homes))):
            homes = await self._session.execute(
                select(view.homes.c.home_id, view.homes.c.union_id).where(view.homes.c.home_id.in_(chunk))
            )
            found: dict[str, str] = {home_id: union_id for home_id, union_id in homes}
            for home_id in chunk:
                self._homes[home_id] = found.get(home_id)

    async def union_on(self, member_id: str, day: date) -> str | None:
        if member_id not in self._stays:
            await self.preload([member_id], [])
        return union_of_stays(self._stays[member_id], day)

    async def home_union(self, home_id: str) -> str | None:
        if home_id not in self._homes:
            await self.preload([], [home_id])
        return self._homes[home_id]


class Results(ports.AbstractResults):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def save(self, campaign_id: str, results: Sequence[HomeResult]) -> None:
        if results:
            await self._session.execute(
                insert(orm.results), [{"campaign_id": campaign_id, **asdict(r)} for r in results]
            )


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
        await self._session.execute(
            insert(orm.post_stars).values(
                month=month, post_id=star.post_id, worker_id=star.worker_id, average=star.average, item_count=star.items
            )
        )


class Studios(ports.AbstractStudios):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def put(self, assessment: commands.AssessStudio, reward_cny: int) -> None:
        await upsert(self._session, orm.studio_rewards, {**asdict(assessment), "reward_cny": reward_cny})
