"""How a service applies the messages of one batch inside the batch's transaction.

A `BatchScope` sees the whole batch first (`prefetch`: load what it needs in a few bulk
queries), then handles message after message, and writes its changes at `flush`. A message
that raises `Rejected` must leave no trace in the scope: `CommandScope`, the scope of every
command topic, takes it back with the unit of work (`unionhub_runtime.unit_of_work`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent, OutgoingEvent, encode
from unionhub_domain import Missing, Rejected

from .inserts import InsertsTogether
from .messagebus import MessageBus
from .reads import ReadsTogether
from .unit_of_work import AbstractUnitOfWork

U = TypeVar("U", bound=AbstractUnitOfWork)


@dataclass(frozen=True)
class Emit:
    """An integration event a handler asks to publish."""

    type: str
    data: BaseModel
    key: str | None
    # The command this event answers (its id and source), when not the message being
    # handled (e.g. an opinion found overdue by a timer answers the opinion's submission).
    correlation_id: str | None = None
    correlation_source: str | None = None


EventTable = Mapping[type, tuple[str, type[BaseModel], str | None]]  # domain event -> type, model, key field


def emit_from_table(table: EventTable, event: Any, *, internal: tuple[str, ...] = ()) -> Emit:
    """The integration event of a domain event (a dataclass) whose fields are the contract
    model's, but for `internal` ones; keyed by the named field."""
    event_type, model, key_field = table[type(event)]
    fields = {k: v for k, v in _fields(event).items() if k not in internal}
    return Emit(event_type, model.model_validate(fields, strict=False), key=fields[key_field] if key_field else None)


# Field values `dataclasses.asdict` would return as they are (it copies the others deeply).
_FLAT = (str, int, float, bool, type(None), date, datetime, Decimal)


def _fields(event: Any) -> dict[str, Any]:
    """`asdict(event)`, without its deep copy when every field is a flat value (events' usual
    case, and the cost of one `asdict` a command)."""
    names = _FIELD_NAMES.get(type(event))
    if names is None:
        names = _FIELD_NAMES[type(event)] = tuple(f.name for f in dataclass_fields(event))
    shallow = {name: getattr(event, name) for name in names}
    if all(type(value) in _FLAT for value in shallow.values()):
        return shallow
    return asdict(event)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def encode_emit(
    emit: Emit, *, source: str, correlation_id: str | None, correlation_source: str | None = None
) -> OutgoingEvent:
    """The wire form of `emit`: a fresh id, now, and the command it answers as correlation
    (the one the emit names, else the message being handled)."""
    if emit.correlation_id is not None:
        correlation_id, correlation_source = emit.correlation_id, emit.correlation_source
    return encode(
        event_id=str(uuid.uuid4()),
        event_type=emit.type,
        data=emit.data,
        source=source,
        time=datetime.now(UTC),
        correlation_id=correlation_id,
        correlation_source=correlation_source,
        key=emit.key,
    )


class BatchScope(Protocol):
    async def prefetch(self, events: Sequence[CloudEvent[Any]], reads: ReadsTogether | None = None) -> None:
        """Loads what the batch's `events` will look up; its reads may join the batch's
        `reads` (which the caller runs if this does not)."""
        ...

    async def handle(self, event: CloudEvent[Any], *, final: bool = False) -> Sequence[Emit]:
        """What `event` caused; raises `Rejected` (`Missing` for a prerequisite not known
        yet). `final`: a held command's last try (its hold ended), so a `Missing` is its
        rejection and is recorded as one."""
        ...

    async def flush(self, together: InsertsTogether | None = None) -> None:
        """Writes what the batch's commands kept; inserts may be gathered in `together`,
        which the caller runs."""
        ...

    def committed(self) -> None:
        """The transaction that ran this scope committed: count what it did (business metrics)."""
        ...


class BulkScope(Protocol):
    """The scope of a high-volume stream (`PipelineConfig.bulk`): the batch's decoded values
    at once, written in a few statements; it deduplicates by a key of its own."""

    async def ingest(self, values: Sequence[Any]) -> None: ...


ScopeFactory = Callable[[AsyncSession], BatchScope | BulkScope]


class Observer(Protocol):
    """Counts what commands did (a service's business metrics), once their transaction
    committed; a command still held is not counted (it has no outcome yet)."""

    def applied(self, command: Any, events: Sequence[Any]) -> None: ...

    def refused(self, command: Any, rejection: Rejected) -> None: ...


class CommandScope(Generic[U]):
    """The batch scope of a command topic: each message translated to a domain command, run
    by the message bus in the batch's unit of work, its events translated to integration
    events. An applied command is kept; a rejected (or held, or failing) one is discarded."""

    def __init__(
        self,
        uow: U,
        bus: MessageBus[U],
        translate: Callable[[CloudEvent[Any]], Any],
        to_emit: Callable[[Any], Emit],
        observer: Observer | None = None,
    ) -> None:
        self._uow, self._bus, self._translate, self._to_emit, self._observer = uow, bus, translate, to_emit, observer
        self._commands: dict[tuple[str, str], Any] = {}  # by (source, id): translated once, in prefetch
        self._observed: list[tuple[Any, Sequence[Any] | Rejected]] = []  # counted by `committed`

    async def prefetch(self, events: Sequence[CloudEvent[Any]], reads: ReadsTogether | None = None) -> None:
        self._commands = {(e.source, e.id): self._translate(e) for e in events}
        await self._uow.preload(list(self._commands.values()), reads)

    async def handle(self, event: CloudEvent[Any], *, final: bool = False) -> Sequence[Emit]:
        command = self._commands.pop((event.source, event.id), None) or self._translate(event)
        await self._uow.begin(command)
        try:
            domain_events = await self._bus.handle(command, self._uow)
        except Rejected as rejection:
            await self._uow.discard()
            if final or not isinstance(rejection, Missing):  # held: no trace until applied or rejected
                await self._bus.rejected(command, rejection, self._uow)
                self._observed.append((command, rejection))
            raise
        except BaseException:
            await self._uow.discard()
            raise
        await self._uow.keep()
        self._observed.append((command, domain_events))
        return [self._to_emit(e) for e in domain_events]

    async def flush(self, together: InsertsTogether | None = None) -> None:
        await self._uow.flush(together)

    def committed(self) -> None:
        observed, self._observed = self._observed, []
        if self._observer is None:
            return
        for command, outcome in observed:
            if isinstance(outcome, Rejected):
                self._observer.refused(command, outcome)
            else:
                self._observer.applied(command, outcome)
