"""Evaluation's unit of work: ratings in memory, written once per batch; other commands
write through, in a savepoint each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.reads import ReadsTogether
from unionhub_runtime.unit_of_work import SessionUnitOfWork

from ..domain import commands
from ..service_layer.ports import UnitOfWork
from .repositories import Campaigns, Membership, PostStars, Ratings, Results, Studios


class SqlAlchemyUnitOfWork(SessionUnitOfWork, UnitOfWork):
    """A batch's ratings are decided against state loaded in bulk and written in a few
    statements, without a savepoint each (the hot path); a command of another kind may read
    what the ratings so far changed, or change what they read: the ratings are written
    before it and what ratings read is loaded afresh after it."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.results = Results(session)
        self.post_stars = PostStars(session)
        self.studios = Studios(session)
        self._fresh_rating_state()

    def _fresh_rating_state(self) -> None:
        self._rating_campaigns = Campaigns(self.session, shared=True)
        self.campaigns = self._rating_campaigns
        self.membership = self._membership = Membership(self.session)
        self.ratings = self._ratings = Ratings(self.session, self.journal)

    def writes_through(self, command: Any) -> bool:
        return not isinstance(command, commands.SubmitRating)

    async def preload(self, batch: Sequence[Any], reads: ReadsTogether | None = None) -> None:
        ratings = [c for c in batch if isinstance(c, commands.SubmitRating)]
        await self._membership.preload(
            (r.rater_id for r in ratings if r.rater_kind == "member"), (r.home_id for r in ratings)
        )
        await self._ratings.preload(ratings)

    async def begin(self, command: Any) -> None:
        await super().begin(command)  # writes the ratings so far before a command that writes through
        if self.writes_through(command):
            self._fresh_rating_state()
            self.campaigns = Campaigns(self.session, shared=False)
        else:
            self.campaigns = self._rating_campaigns
            self.campaigns.seen.clear()

    async def write(self, together: InsertsTogether | None = None) -> None:
        if together is not None:
            await together.run()  # the ratings' statements are not inserts alone: written at once, after
        await self._ratings.write()
