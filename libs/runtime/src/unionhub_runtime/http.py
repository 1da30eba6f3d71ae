"""What every service's read API shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from pydantic import BaseModel, Field
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


class Problem(BaseModel):
    """The body of a refusal (FastAPI's `HTTPException`)."""

    detail: str = Field(description="why there is no answer")


def not_found(description: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering 404 with a `Problem`."""
    return {404: {"model": Problem, "description": description}}


class Alive(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool] = Field(description="each dependency: true when it answers")
