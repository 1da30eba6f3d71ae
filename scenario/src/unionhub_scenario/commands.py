"""Commands as the outside systems send them: validated against the contracts before sending."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from unionhub_contracts import message_type


@dataclass(frozen=True)
class Command:
    topic: str  # the contract topic name (no deployment prefix)
    type: str
    data: dict[str, Any]
    id: str

    @property
    def key(self) -> str | None:
        field = message_type(self.topic, self.type).key
        return str(self.data[field]) if field else None


def make(topic: str, type_: str, data: dict[str, Any], rng_id: str | None = None) -> Command:
    """A command whose data the contract accepts (a generator bug fails here, not in a service)."""
    message_type(topic, type_).data.model_validate(data, strict=False)
    return Command(topic, type_, data, rng_id or str(uuid.uuid4()))


# The business moment each command type carries, in the order a field is looked for.
_WHEN = (
    "founded_on",
    "joined_on",
    "left_on",
    "transferred_on",
    "opened_on",
    "appointed_on",
    "submitted_at",
    "responded_at",
    "visited_at",
    "scored_at",
)


def business_time(command: Command) -> str:
    """When the command happened in the sender's world ("" for one that carries no moment)."""
    return next((str(command.data[f]) for f in _WHEN if f in command.data), "")


@dataclass(frozen=True)
class Feed:
    """One outside system's stream of commands: published as one sender (`source`), in order,
    without waiting for answers, as that system produces them."""

    source: str
    commands: list[Command]

    @classmethod
    def in_business_order(cls, source: str, commands: list[Command]) -> Feed:
        """The commands ordered by business time. Ties keep their given order, so a key's steps
        stay in the order they were generated in; a command without a moment of its own (a
        rating of an answer, a campaign's close) stays right after the command before it."""
        moments, last = [], ""
        for command in commands:
            last = business_time(command) or last
            moments.append(last)
        order = sorted(range(len(commands)), key=moments.__getitem__)
        return cls(source, [commands[i] for i in order])
