"""Backward-compatibility check between two OpenAPI documents of one service's HTTP API.

Breaking for a client built against `old`: a route removed; a parameter removed, newly
required, or accepting less (a type, an enum value, a raised or lowered bound, another
pattern or format); a success response removed; an answered field removed, no longer
always present, or of a type the client did not expect (null or another format included).
Compatible: a route, an optional parameter or an answered field added, a parameter
accepting more, an answer narrower. Enum values in answers count as their type (clients
read them tolerantly, as consumers of the contracts accept unknown values), so adding one
is compatible.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
_BOUNDS_UP = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_BOUNDS_DOWN = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _resolve(schema: Schema, doc: Schema) -> Schema:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _variants(schema: Schema, doc: Schema) -> list[Schema]:
    """The alternatives a value may take (one for a plain schema), references resolved."""
    schema = _resolve(schema, doc)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    return [v for a in alternatives for v in _variants(a, doc)] if alternatives else [schema]


def _types(schema: Schema, doc: Schema, *, enums: bool) -> set[str]:
    found: set[str] = set()
    for variant in _variants(schema, doc):
        values = variant.get("enum", [variant["const"]] if "const" in variant else None)
        if values is not None and enums:
            found |= {f"enum:{v}" for v in values}
        elif values is not None:
            found |= {"string" if isinstance(v, str) else "number" for v in values}
        else:
            kind = variant.get("type", "any")
            found |= {kind} if isinstance(kind, str) else set(kind)
    return found


def _formats(schema: Schema, doc: Schema) -> set[str]:
    return {v["format"] for v in _variants(schema, doc) if "format" in v}


def _covered(kind: str, by: set[str]) -> bool:
    return (
        kind in by
        or "any" in by
        or (kind == "integer" and "number" in by)
        or (kind.startswith("enum:") and "string" in by)
    )


def _label(schema: Schema) -> str:
    """What pairs the alternatives of two versions: the model's name, else the JSON type."""
    if schema.get("type") == "array":
        return "array of " + _label(schema.get("items", {}))
    return str(schema.get("title") if schema.get("type") == "object" else schema.get("type", "any"))


def _accepts_less(old: Schema, new: Schema, old_doc: Schema, new_doc: Schema, at: str) -> list[str]:
    """A request parameter's schema: what `new` refuses that `old` took."""
    new_types = _types(new, new_doc, enums=True)
    lost = sorted(t for t in _types(old, old_doc, enums=True) if not _covered(t, new_types))
    problems = [f"{at}: no longer accepts {lost}"] if lost else []
    before = {k: v for s in _variants(old, old_doc) for k, v in s.items()}
    after = {k: v for s in _variants(new, new_doc) for k, v in s.items()}
    problems += [
        f"{at}: {b} raised to {after[b]}" for b in _BOUNDS_UP if b in after and after[b] > before.get(b, float("-inf"))
    ]
    problems += [
        f"{at}: {b} lowered to {after[b]}"
        for b in _BOUNDS_DOWN
        if b in after and after[b] < before.get(b, float("inf"))
    ]
    if "pattern" in after and after["pattern"] != before.get("pattern"):
        problems.append(f"{at}: pattern is now {after['pattern']}")
    if formats := _formats(new, new_doc) - _formats(old, old_doc):
        problems.append(f"{at}: format is now {sorted(formats)}")
    return problems


def _answers_more(old: Schema, new: Schema, old_doc: Schema, new_doc: Schema, at: str) -> list[str]:
    """An answer's schema: what `new` may send that a client of `old` does not expect."""
    old_types = _types(old, old_doc, enums=False)
    added = sorted(t for t in _types(new, new_doc, enums=False) if not _covered(t, old_types))
    problems = [f"{at}: may now be {added}"] if added else []
    formats_before = _formats(old, old_doc)
    if formats_before and (formats := _formats(new, new_doc) - formats_before):
        problems.append(f"{at}: format is now {sorted(formats)}")
    olds = {_label(v): v for v in _variants(old, old_doc) if v.get("type") in ("object", "array")}
    news = {_label(v): v for v in _variants(new, new_doc) if v.get("type") in ("object", "array")}
    if len(olds) == len(news) == 1:  # one shape, perhaps renamed: compare it
        olds, news = {"": next(iter(olds.values()))}, {"": next(iter(news.values()))}
    for label, after in news.items():
        if label not in olds:
            problems.append(f"{at}: may now be {label}")
            continue
        before = olds[label]
        if before.get("type") == "array":
            problems += _answers_more(before.get("items", {}), after.get("items", {}), old_doc, new_doc, f"{at}[]")
        old_props, new_props = before.get("properties", {}), after.get("properties", {})
        for name, schema in old_props.items():
            if name not in new_props:
                problems.append(f"{at}.{name}: removed")
                continue
            if name in before.get("required", ()) and name not in after.get("required", ()):
                problems.append(f"{at}.{name}: no longer always present")
            problems += _answers_more(schema, new_props[name], old_doc, new_doc, f"{at}.{name}")
        extra_before, extra_after = before.get("additionalProperties"), after.get("additionalProperties")
        if isinstance(extra_before, dict) and isinstance(extra_after, dict):
            problems += _answers_more(extra_before, extra_after, old_doc, new_doc, f"{at}.*")
    return problems


def _json_schema(response: Schema) -> Schema | None:
    schema: Schema | None = response.get("content", {}).get("application/json", {}).get("schema")
    return schema


def _operation_breaks(old: Schema, new: Schema, old_doc: Schema, new_doc: Schema, at: str) -> list[str]:
    problems: list[str] = []
    old_params = {(p["in"], p["name"]): p for p in old.get("parameters", [])}
    new_params = {(p["in"], p["name"]): p for p in new.get("parameters", [])}
    for (where, name), param in new_params.items():
        if param.get("required") and not old_params.get((where, name), {}).get("required"):
            problems.append(f"{at} {where} parameter {name}: newly required")
    for (where, name), param in old_params.items():
        here = f"{at} {where} parameter {name}"
        if (where, name) not in new_params:
            problems.append(f"{here}: removed")
        else:
            problems += _accepts_less(
                param.get("schema", {}), new_params[where, name].get("schema", {}), old_doc, new_doc, here
            )
    for status, response in old.get("responses", {}).items():
        if not status.startswith("2"):
            continue  # an error's shape may change; that it is an error does not
        if status not in new.get("responses", {}):
            problems.append(f"{at} {status}: removed")
            continue
        before, after = _json_schema(response), _json_schema(new["responses"][status])
        if before is not None and after is None:
            problems.append(f"{at} {status}: no longer JSON")
        elif before is not None and after is not None:
            problems += _answers_more(before, after, old_doc, new_doc, f"{at} {status}")
    return problems


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What in `new` would break a client built against `old`; empty when compatible."""
    problems: list[str] = []
    for path, operations in old.get("paths", {}).items():
        for method in (m for m in operations if m in _METHODS):
            at = f"{method.upper()} {path}"
            if method not in new.get("paths", {}).get(path, {}):
                problems.append(f"{at}: removed")
            else:
                problems += _operation_breaks(operations[method], new["paths"][path][method], old, new, at)
    return problems
