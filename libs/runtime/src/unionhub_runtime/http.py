"""What every service's read API shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for reading: on SQLite it does not take the write lock."""
    async with request.app.state.service.sessions() as session:
        await session.connection(execution_options={"readonly": True})
        yield session


ReadSession = Annotated[AsyncSession, Depends(read_session)]

# An id in a URL path: what the contracts accept as an id (`unionhub_contracts.common.Id`),
# so an id that could never have been stored is refused before any query.
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")]
