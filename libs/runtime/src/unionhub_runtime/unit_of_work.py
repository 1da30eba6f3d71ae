"""The one way a batch takes back a rejected command: a unit of work with `begin`, `discard`
and `flush`, shared by every service.

A batch of commands runs in one transaction (group commit). Each command starts with
`begin` and ends with `keep` (applied) or `discard` (rejected, held or failed: everything it
changed is taken back, so the next command of the batch sees the state as if it never ran);
`flush` writes what the batch kept. Two ways of keeping changes, chosen per command by `writes_through`:

- **in memory** (the default): repositories keep loaded aggregates and pending writes in
  maps and lists changed through the unit of work's `Journal`, which `discard` plays back.
  No savepoint: PostgreSQL slows down sharply past 64 subtransactions in one transaction,
  and this is the hot path (thousands of commands a batch).
- **through a savepoint**, for a command whose repositories write to the database at once
  (rare commands, or a service whose batches are capped): pending in-memory writes are
  flushed first (the command may read them), then `discard` rolls the savepoint back.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

from .inserts import InsertsTogether
from .reads import ReadsTogether

A = TypeVar("A")
_ABSENT = object()


class Journal:
    """An undo log of one command's changes to a batch's in-memory state."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._remembered: set[tuple[int, Any]] = set()

    def remember(self, mapping: dict[Any, Any], key: Any, copy_of: Callable[[Any], Any] = lambda v: v) -> None:
        """Records `mapping[key]` as it is now (a copy, for values changed in place), once a
        command: `discard` puts it back, or removes the key if it was absent."""
        if (id(mapping), key) in self._remembered:
            return
        self._remembered.add((id(mapping), key))
        before = mapping.get(key, _ABSENT)
        if before is _ABSENT:
            self._undo.append(lambda: mapping.pop(key, None))
        else:
            kept = copy_of(before)
            self._undo.append(lambda: mapping.__setitem__(key, kept))

    def remembers(self, mapping: dict[Any, Any], key: Any) -> bool:
        return (id(mapping), key) in self._remembered

    def set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        self.remember(mapping, key)
        mapping[key] = value

    def append(self, items: list[Any], *values: Any) -> None:
        length = len(items)
        self._undo.append(lambda: items.__delitem__(slice(length, None)))
        items.extend(values)

    def begin(self) -> None:
        self._undo.clear()
        self._remembered.clear()

    def discard(self) -> None:
        while self._undo:
            self._undo.pop()()
        self._remembered.clear()


def snapshot(aggregate: A) -> A:
    """A copy to put back if the command is rejected. Aggregates hold immutable values and
    lists of immutable entries, so copying the lists is as deep as it needs to go (and far
    cheaper than `copy.deepcopy` per aggregate per command)."""
    if aggregate is None:
        return aggregate
    kind = type(aggregate)
    plain = _PLAIN.get(kind)
    if plain is None:
        plain = _PLAIN[kind] = _copies_plainly(kind)
    if plain:  # what `copy.copy` does for such a class, without its reduce protocol
        clone = object.__new__(kind)
        clone.__dict__.update(vars(aggregate))
    else:
        clone = copy.copy(aggregate)
    for name, value in vars(clone).items():
        if isinstance(value, list):
            setattr(clone, name, list(value))
    return clone


_PLAIN: dict[type, bool] = {}


def _copies_plainly(kind: type) -> bool:
    """Whether `copy.copy` of a `kind` is its `__dict__` in a new instance: no copy or pickle
    hook of its own, no `__new__` or `__slots__`."""
    inherited = ("__new__", "__reduce_ex__", "__reduce__", "__getstate__")  # object's own (3.11 has __getstate__)
    return all(getattr(kind, hook, None) is getattr(object, hook, None) for hook in inherited) and not any(
        hasattr(kind, hook) for hook in ("__copy__", "__setstate__", "__slots__")
    )


class AbstractRepository(ABC, Generic[A]):
    """Aggregates of one kind; remembers those a command loaded or added (`seen`), whose
    recorded events the unit of work collects."""

    def __init__(self) -> None:
        self.seen: list[A] = []

    async def get(self, key: str) -> A | None:
        found = await self._get(key)
        if found is not None:
            self.seen.append(found)
        return found

    async def add(self, aggregate: A) -> None:
        self.seen.append(aggregate)
        await self._add(aggregate)

    async def save(self, aggregate: A) -> None:
        """Stores the changes of an aggregate obtained with `get`."""
        await self._save(aggregate)

    @abstractmethod
    async def _get(self, key: str) -> A | None: ...

    @abstractmethod
    async def _add(self, aggregate: A) -> None: ...

    async def _save(self, aggregate: A) -> None:
        raise NotImplementedError(f"{type(aggregate).__name__} is never changed after it is added")


class AbstractUnitOfWork(ABC):
    """The port handlers see: repositories, plus events not recorded by an aggregate."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.journal = Journal()

    @abstractmethod
    def repositories(self) -> Sequence[AbstractRepository[Any]]:
        """The repositories whose aggregates record events."""

    async def preload(self, commands: Sequence[Any], reads: ReadsTogether | None = None) -> None:
        """Loads in bulk what the batch's commands will look up (optional); its reads may join
        the batch's `reads`."""
        return None

    async def begin(self, command: Any) -> None:
        self.journal.begin()
        for repository in self.repositories():
            repository.seen.clear()

    async def keep(self) -> None:
        """The current command is applied: its changes stay."""
        return None

    async def discard(self) -> None:
        """Takes back everything the current command changed."""
        self.journal.discard()
        for repository in self.repositories():
            for aggregate in repository.seen:
                aggregate.events.clear()  # a rejected command's events are never published
        self.events.clear()

    async def flush(self, together: InsertsTogether | None = None) -> None:
        """Writes what the batch kept (the caller commits); inserts may be gathered in
        `together`, which the caller runs."""
        return None

    def collect_new_events(self) -> Iterator[Any]:
        for repository in self.repositories():
            for aggregate in repository.seen:
                while aggregate.events:
                    yield aggregate.events.pop(0)
        while self.events:
            yield self.events.pop(0)


class SessionUnitOfWork(AbstractUnitOfWork):
    """A unit of work over one batch's session; the pipeline owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self.session = session
        self._savepoint: AsyncSessionTransaction | None = None

    def writes_through(self, command: Any) -> bool:
        """True for a command whose repositories write to the database at once: it runs in
        a savepoint. The default keeps every change in memory until `flush`."""
        return False

    async def write(self, together: InsertsTogether | None = None) -> None:
        """Writes the changes kept in memory so far (inserts may be gathered in `together`)."""

    async def begin(self, command: Any) -> None:
        await super().begin(command)
        if self.writes_through(command):
            await self.write()  # the command may read what is still in memory
            self._savepoint = await self.session.begin_nested()

    async def keep(self) -> None:
        # Released at once, not at the next `begin`: a command retried from the holds opens
        # its savepoint inside one of the holding's, and savepoints must close in order.
        if self._savepoint is not None:
            savepoint, self._savepoint = self._savepoint, None
            await savepoint.commit()

    async def discard(self) -> None:
        await super().discard()
        if self._savepoint is not None:
            savepoint, self._savepoint = self._savepoint, None
            await savepoint.rollback()

    async def flush(self, together: InsertsTogether | None = None) -> None:
        await self.write(together)


def keys_of(commands: Iterable[Any], *names: str) -> set[str]:
    """The values of the attributes `names` across `commands` (those set), for a preload."""
    return {value for command in commands for name in names if (value := getattr(command, name, None))}
