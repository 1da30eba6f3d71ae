"""Group commit for ratings: a batch's ratings are decided against state loaded in bulk and
written in a few statements, without a savepoint each (PostgreSQL slows down sharply past
64 subtransactions in one transaction).

Handlers decide before they write, so a rejected rating has written nothing; the buffers
are still cut back to where the rating started, to keep that true whatever a handler does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.database import chunks
from unionhub_runtime.membership_view import Stay, union_of_stays

from ..domain import commands, model
from . import orm
from .repository import Campaigns, Membership, Ratings, SqlAlchemyUnitOfWork, rating_row

Key = tuple[str, str, str, str]  # campaign, home, rater kind, rater


def _key(rating: commands.SubmitRating) -> Key:
    return (rating.campaign_id, rating.home_id, rating.rater_kind, rating.rater_id)


class CachedCampaigns(Campaigns):
    _shared_lock = True

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.cache: dict[str, model.Campaign | None] = {}

    async def _get(self, campaign_id: str) -> model.Campaign | None:
        if campaign_id not in self.cache:
            self.cache[campaign_id] = await super()._get(campaign_id)
        return self.cache[campaign_id]


class CachedMembership(Membership):
    """The view's answers for a batch of ratings: homes and the raters' histories loaded in bulk."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.stays: dict[str, list[Stay]] = {}
        self.homes: dict[str, str | None] = {}

    async def preload(self, member_ids: Iterable[str], home_ids: Iterable[str]) -> None:
        view = orm.membership_view
        h = view.history.c
        for chunk in chunks(sorted(set(member_ids) - set(self.stays))):
            for member_id in chunk:
                self.stays[member_id] = []
            rows = await self._session.execute(select(h.member_id, h.union_id, h.from_on, h.to_on)
                                               .where(h.member_id.in_(chunk)))
            for member_id, union_id, from_on, to_on in rows:
                self.stays[member_id].append((union_id, from_on, to_on))
        for chunk in chunks(sorted(set(home_ids) - set(self.homes))):
            homes = await self._session.execute(select(view.homes.c.home_id, view.homes.c.union_id)
                                                .where(view.homes.c.home_id.in_(chunk)))
            found: dict[str, str] = {home_id: union_id for home_id, union_id in homes}
            for home_id in chunk:
                self.homes[home_id] = found.get(home_id)

    async def union_on(self, member_id: str, day: date) -> str | None:
        if member_id not in self.stays:
            await self.preload([member_id], [])
        return union_of_stays(self.stays[member_id], day)

    async def home_union(self, home_id: str) -> str | None:
        if home_id not in self.homes:
            await self.preload([], [home_id])
        return self.homes[home_id]


class BufferedRatings(Ratings):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.latest: dict[Key, datetime | None] = {}  # submitted_at of the stored rating
        self.puts: dict[Key, dict[str, Any]] = {}
        self.audits: list[dict[str, Any]] = []
        self.journal: list[tuple[Key, datetime | None, dict[str, Any] | None]] = []  # for undo

    async def preload(self, ratings: Iterable[commands.SubmitRating]) -> None:
        keys = sorted({_key(r) for r in ratings} - set(self.latest))
        r = orm.ratings.c
        for chunk in chunks(keys, 400):  # four parameters a key
            rows = await self._session.execute(
                select(r.campaign_id, r.home_id, r.rater_kind, r.rater_id, r.submitted_at)
                .where(tuple_(r.campaign_id, r.home_id, r.rater_kind, r.rater_id).in_(chunk)))
            found = {tuple(row[:4]): row[4] for row in rows}
            for key in chunk:
                self.latest[key] = found.get(key)

    async def put(self, rating: commands.SubmitRating, value: Fraction) -> None:
        key = _key(rating)
        if key not in self.latest:
            await self.preload([rating])
        stored = self.latest[key]
        if stored is not None and stored > rating.submitted_at:
            return
        self.journal.append((key, stored, self.puts.get(key)))
        self.latest[key] = rating.submitted_at
        self.puts[key] = rating_row(rating)

    async def audit(self, rating: commands.SubmitRating, outcome: str, code: str | None, reason: str | None,
                    at: datetime) -> None:
        self.audits.append({"command_id": rating.command_id, "campaign_id": rating.campaign_id,
                            "home_id": rating.home_id, "rater_kind": rating.rater_kind, "rater_id": rating.rater_id,
                            "outcome": outcome, "code": code, "reason": reason, "at": at})

    async def write(self) -> None:
        if self.puts:
            await self.write_latest(list(self.puts.values()))
        if self.audits:
            await self._session.execute(insert(orm.rating_audit), self.audits)
        self.puts.clear()
        self.audits.clear()
        self.journal.clear()


class RatingBatchUnitOfWork(SqlAlchemyUnitOfWork):
    """What `rating.submit` needs, loaded once per batch and written once per batch."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.campaigns: CachedCampaigns = CachedCampaigns(session)
        self.membership: CachedMembership = CachedMembership(session)
        self.ratings: BufferedRatings = BufferedRatings(session)

    async def preload(self, ratings: list[commands.SubmitRating]) -> None:
        await self.membership.preload((r.rater_id for r in ratings if r.rater_kind == "member"),
                                      (r.home_id for r in ratings))
        await self.ratings.preload(ratings)

    def mark(self) -> tuple[int, int]:
        return len(self.ratings.audits), len(self.ratings.journal)

    def undo(self, mark: tuple[int, int]) -> None:
        """Takes back what was buffered since `mark`."""
        audits, journal = mark
        del self.ratings.audits[audits:]
        while len(self.ratings.journal) > journal:
            key, latest, put = self.ratings.journal.pop()
            self.ratings.latest[key] = latest
            if put is None:
                self.ratings.puts.pop(key, None)
            else:
                self.ratings.puts[key] = put

    async def write(self) -> None:
        await self.ratings.write()
