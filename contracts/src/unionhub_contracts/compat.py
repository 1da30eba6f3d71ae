"""Compatibility check between two JSON Schemas of one message's `data`.

Who reads a message decides what breaks. A command's only reader is the service, upgraded
before any sender uses what is new, so the new schema must accept everything the old one
did (messages already sent, senders not upgraded): a property removed, a property's type
changed, a new required property, an enum value removed or a bound tightened breaks it;
adding an optional property or an enum value does not.

An event is read by other services, which may be older than its producer (any upgrade order
works) and validate strictly; and newer readers still read the old events on the topic. So
both directions count: what breaks a command, and also whatever lets the producer write a
value older readers reject: an enum value added (or the enum widened to any string), a type
widened (`null` now allowed, say), a bound loosened or dropped, a required property made
optional. Adding an optional property still is compatible (readers ignore what they do not
know). A breaking change to an event is a new type version (`<type>.v2`), never an edit.
"""

from __future__ import annotations

from typing import Any

_BOUNDS_UP = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_BOUNDS_DOWN = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


def is_event_topic(topic: str) -> bool:
    """Whether `topic` carries events (`<service>.events`), read by services that may be
    older than its producer; every other topic carries what one service reads."""
    return topic.endswith(".events")


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return set().union(*(_types(s, root) for s in schema["anyOf"]))
    if "enum" in schema:
        return {f"enum:{v}" for v in schema["enum"]}
    if "const" in schema:
        return {f"enum:{schema['const']}"}
    kind = schema.get("type", "any")
    return {kind if isinstance(kind, str) else "|".join(kind)}


def _narrowed(wide: set[str], narrow: set[str]) -> set[str]:
    """What `wide` accepts and `narrow` does not (an enum value is within a plain string)."""
    return {t for t in wide - narrow if not (t.startswith("enum:") and "string" in narrow)}


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "data", *, event: bool) -> list[str]:
    """What in `new` would break a party built against `old`; empty when compatible.
    `event`: the message is an event (see the module's docstring), not a command."""
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in old_props:
        if name not in new_props:
            problems.append(f"{path}.{name}: removed")
    for name in sorted(new_required - old_required):
        problems.append(f"{path}.{name}: newly required")
    if event:
        for name in sorted(old_required - new_required):
            if name in new_props:
                problems.append(f"{path}.{name}: no longer required (older readers need it)")
    for name, old_schema in old_props.items():
        if name in new_props:
            problems += _changed(old_schema, new_props[name], old, new, f"{path}.{name}", event)
    return problems


def _changed(
    before: dict[str, Any], after: dict[str, Any], old: dict[str, Any], new: dict[str, Any], path: str, event: bool
) -> list[str]:
    """The breaking changes between two schemas of one value (a property, an array's items)."""
    problems: list[str] = []
    old_types, new_types = _types(before, old), _types(after, new)
    if removed := _narrowed(old_types, new_types):
        problems.append(f"{path}: no longer accepts {sorted(removed)}")
    if event and (added := _narrowed(new_types, old_types)):
        problems.append(f"{path}: may now be {sorted(added)}, which older readers reject")
    before, after = _value(before, old), _value(after, new)
    for bound, tighter in [(b, max) for b in _BOUNDS_UP] + [(b, min) for b in _BOUNDS_DOWN]:
        was, now = before.get(bound), after.get(bound)
        if was == now:
            continue
        if now is not None and (was is None or tighter(was, now) == now):
            problems.append(f"{path}: {bound} {'raised' if tighter is max else 'lowered'} to {now}")
        elif event:  # looser, or gone: the producer may write what older readers refuse
            change = "dropped" if now is None else f"{'lowered' if tighter is max else 'raised'} to {now}"
            problems.append(f"{path}: {bound} {change}, which older readers reject")
    if before.get("type") == "object" and after.get("type") == "object":
        problems += breaking_changes(
            {**before, "$defs": old.get("$defs", {})}, {**after, "$defs": new.get("$defs", {})}, path, event=event
        )
    if "items" in before and "items" in after:  # a list of enum values: `station.registered`'s services
        problems += _changed(before["items"], after["items"], old, new, f"{path}[]", event)
    return problems


def _value(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The schema of the value itself: an optional property's one branch that is not null."""
    schema = _resolve(schema, root)
    branches = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    return _value(branches[0], root) if len(branches) == 1 else schema
