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
