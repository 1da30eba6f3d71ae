"""What every aggregate has, and the rule for a command that repeats what is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .rejections import Rejected, RejectionCode


@dataclass
class Aggregate:
    """Events the aggregate recorded and the unit of work has not collected yet."""

    events: list[Any] = field(default_factory=list, compare=False, repr=False, kw_only=True)


def same_again(stored: object, wanted: Mapping[str, Any], what: str) -> None:
    """The one rule for a command that creates what exists already: with the same data it
    changes nothing (the caller answers again, so a sender waiting for an answer gets one);
    with other data it is a conflict, naming the fields that differ."""
    differing = sorted(name for name, value in wanted.items() if getattr(stored, name) != value)
    if differing:
        raise Rejected(RejectionCode.CONFLICT, f"{what} exists with different {', '.join(differing)}")
