"""Which data fields may carry a person's words or name: tools that show a message to an
operator (the dead-letter tool) mask them. A contract test keeps the list complete: every
free-text field of a catalogued message is named here or in `NOT_PERSONAL`."""

from __future__ import annotations

from typing import Any

# Names (a member's display name; union, home and station names can name people too) and
# free text (reasons, opinions, replies).
PERSONAL_FIELDS = frozenset({"display_name", "name", "reason", "text"})
# Free-text fields that carry no one's words: codes, ids and types the services write,
# a category, a district, a month, a campaign's title.
NOT_PERSONAL = frozenset(
    {"category", "code", "command_id", "command_type", "district", "month", "title", "waiting_for"}
)


def masked(value: Any) -> Any:
    """`value` (decoded JSON) with every personal field's value replaced by its length."""
    if isinstance(value, dict):
        return {k: (_mask(v) if k in PERSONAL_FIELDS and v is not None else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def _mask(value: Any) -> str:
    return f"<masked: {len(value)} chars>" if isinstance(value, str) else "<masked>"
