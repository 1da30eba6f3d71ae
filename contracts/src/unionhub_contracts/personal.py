"""Which data fields may carry a person's words or name: tools that show a message to an
operator (the dead-letter tool) mask them. A contract test keeps the list complete: every
free-text field of a catalogued message is named here or in `NOT_PERSONAL`.

Masking shows only what is known to be safe: a string is shown when its field is one the
contracts define and not personal. A poison message is the one that does not follow the
schema, so a misspelt `displayName` is masked like `display_name`."""

from __future__ import annotations

from functools import cache
from typing import Any

from .catalogue import MESSAGES
from .envelope import CloudEvent

# Names (a member's display name; union, home and station names can name people too) and
# free text (reasons, opinions, replies).
PERSONAL_FIELDS = frozenset({"display_name", "name", "reason", "text"})
# Free-text fields that carry no one's words: codes, ids and types the services write,
# a category, a district, a month, a campaign's title.
NOT_PERSONAL = frozenset(
    {"category", "code", "command_id", "command_type", "district", "month", "title", "waiting_for"}
)


def masked(value: Any, field: str | None = None) -> Any:
    """`value` (decoded JSON) with every string not known to be safe replaced by its length."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, field) for v in value]
    if field in PERSONAL_FIELDS and value is not None:
        return _mask(value)
    if isinstance(value, str) and field not in shown_fields():
        return _mask(value)
    return value


@cache
def shown_fields() -> frozenset[str]:
    """Every field name of the envelope and of the catalogued messages' data, but the personal."""
    names = set(CloudEvent.model_fields)
    for types in MESSAGES.values():
        for spec in types.values():
            names |= _field_names(spec.data.model_json_schema())
    return frozenset(names - PERSONAL_FIELDS)


def _field_names(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.add(name)
            found |= _field_names(sub)
        for key, sub in node.items():
            if key != "properties":
                found |= _field_names(sub)
    elif isinstance(node, list):
        for sub in node:
            found |= _field_names(sub)
    return found


def _mask(value: Any) -> str:
    return f"<masked: {len(value)} chars>" if isinstance(value, str) else "<masked>"
