"""`ReadsTogether`: what a batch's transaction reads before it applies, in one statement."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from .postgres import postgres_fetch

T = TypeVar("T")


@dataclass(frozen=True)
class ReadPart:
    """Columns of the reads' statement, each written with `{0}`, `{1}` … for the part's
    parameters (numbered where the statement places them) and `{w}` for the name of its
    data-modifying `WITH`, if any (an insert's `RETURNING`): `{w} AS (INSERT …)`. No other
    braces; no other names than the tables'."""

    columns: tuple[str, ...]
    parameters: int
    with_clause: str | None = None

    def render(self, first: int, number: int) -> tuple[list[str], str | None]:
        placeholders = [f"${first + i}" for i in range(self.parameters)]
        w = f"unionhub_read_{number}"
        with_clause = None if self.with_clause is None else self.with_clause.format(*placeholders, w=w)
        return [column.format(*placeholders, w=w) for column in self.columns], with_clause


class Read(Generic[T]):
    """What one part read, there once the reads ran."""

    def __init__(self, make: Callable[[Sequence[Any]], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._done = False

    def set(self, value: T) -> None:
        self._value, self._done = value, True

    def made(self, columns: Sequence[Any]) -> None:
        self.set(self._make(columns))

    @property
    def value(self) -> T:
        if not self._done:
            raise RuntimeError("the reads have not run yet")
        return self._value  # type: ignore[return-value]


class ReadsTogether:
    """Reads of one batch's transaction gathered, to go to PostgreSQL as one `SELECT` when
    `run`: a round trip each fewer. A batch of enrolments claims its messages in the inbox,
    looks its unions, members and cadres up and checks the held lanes, each a round trip the
    batch waited for (bench/README.md, round twelve).

    Each part adds columns (`add`) and gets a `Read` of their values, there once the reads ran:
    by `run`, with columns of the caller's own in front (a preload's), or else by `run_rest`
    (the one who began them). On another database each part reads on its own instead (`add`'s
    `alone`, at `run`, in the order added). A part's `WITH` runs with the statement: one that
    writes (the inbox's claim) is written whether or not its columns are read, once."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.combines = session.get_bind().dialect.name == "postgresql"
        self._parts: list[tuple[ReadPart, Sequence[Any], Read[Any]]] = []
        self._alone: list[tuple[Callable[[], Awaitable[Any]], Read[Any]]] = []
        self._ran = False

    @property
    def ran(self) -> bool:
        return self._ran

    def add(
        self,
        part: ReadPart,
        arguments: Sequence[Any],
        make: Callable[[Sequence[Any]], T],
        alone: Callable[[], Awaitable[T]],
    ) -> Read[T]:
        """`part`'s columns, read with `arguments` and made into the read's value by `make`
        (given the columns' values); where reads do not combine, `alone` gives the value."""
        if self._ran:
            raise RuntimeError("the reads have run: add before")
        _check_arguments(part, arguments)
        read: Read[T] = Read(make)
        if self.combines:
            self._parts.append((part, arguments, read))
        else:
            self._alone.append((alone, read))
        return read

    async def run(self, leading: Sequence[tuple[ReadPart, Sequence[Any]]] = ()) -> list[Any]:
        """Runs the reads, after the `leading` parts' columns (PostgreSQL only), whose values
        it returns. Once: what is added after would never be read."""
        if self._ran:
            raise RuntimeError("the reads ran already")
        for part, given in leading:
            _check_arguments(part, given)
        self._ran = True
        if not self.combines:
            if leading:
                raise ValueError("leading columns combine only on PostgreSQL")
            for alone, read in self._alone:
                read.set(await alone())
            return []
        parts = [*leading, *((part, given) for part, given, _ in self._parts)]
        if not parts:
            return []
        statement = _statement(tuple(part for part, _ in parts))
        [row] = await postgres_fetch(self.session, statement, *(argument for _, given in parts for argument in given))
        values = list(row)
        ahead = sum(len(part.columns) for part, _ in leading)
        at = ahead
        for part, _, read in self._parts:
            read.made(values[at : at + len(part.columns)])
            at += len(part.columns)
        return values[:ahead]

    async def run_rest(self) -> None:
        """Runs the reads if nobody did."""
        if not self._ran:
            await self.run()


def _check_arguments(part: ReadPart, arguments: Sequence[Any]) -> None:
    if len(arguments) != part.parameters:
        raise ValueError(f"the part has {part.parameters} parameters, given {len(arguments)} arguments")


@functools.cache
def _statement(parts: tuple[ReadPart, ...]) -> str:
    """The one `SELECT` of `parts`, their parameters numbered in order: built once a
    combination (a pipeline's batches have one or two), not each batch (30 µs)."""
    columns: list[str] = []
    withs: list[str] = []
    first = 1
    for number, part in enumerate(parts):
        rendered, with_clause = part.render(first, number)
        columns += rendered
        if with_clause is not None:
            withs.append(with_clause)
        first += part.parameters
    return ("WITH " + ", ".join(withs) + " " if withs else "") + "SELECT " + ", ".join(columns)
