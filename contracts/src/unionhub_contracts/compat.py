"""Backward-compatibility check between two JSON Schemas of one message's `data`.

Breaking for v1 producers or consumers: a property removed, a property's type changed, a
new required property, an enum value removed, a bound tightened. Adding an optional
property or an enum value is compatible.
"""

from __future__ import annotations

from typing import Any

_BOUNDS_UP = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_BOUNDS_DOWN = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


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


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "data") -> list[str]:
    """What in `new` would break a party built against `old`; empty when compatible."""
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in old_props:
        if name not in new_props:
            problems.append(f"{path}.{name}: removed")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{path}.{name}: newly required")
    for name, old_schema in old_props.items():
        if name not in new_props:
            continue
        before, after = _resolve(old_schema, old), _resolve(new_props[name], new)
        old_types, new_types = _types(before, old), _types(after, new)
        removed = {t for t in old_types - new_types if not (t.startswith("enum:") and "string" in new_types)}
        if removed:
            problems.append(f"{path}.{name}: no longer accepts {sorted(removed)}")
        for bound in _BOUNDS_UP:
            if bound in after and after[bound] > before.get(bound, float("-inf")):
                problems.append(f"{path}.{name}: {bound} raised to {after[bound]}")
        for bound in _BOUNDS_DOWN:
            if bound in after and after[bound] < before.get(bound, float("inf")):
                problems.append(f"{path}.{name}: {bound} lowered to {after[bound]}")
        if before.get("type") == "object" and after.get("type") == "object":
            problems.extend(
                breaking_changes(
                    {**before, "$defs": old.get("$defs", {})},
                    {**after, "$defs": new.get("$defs", {})},
                    f"{path}.{name}",
                )
            )
    return problems
