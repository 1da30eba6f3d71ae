"""Every read route documents its answer, and no change breaks a client of the read APIs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from .openapi_compat import breaking_changes
from .openapi_snapshots import SERVICES, differences, document, snapshot_path

REFRESH = "python -m tests.contract.openapi_snapshots --write"
# The runtime's own routes (health, metrics, AsyncAPI) are documented by the runtime.
OPERATIONS = {"/healthz", "/readyz", "/metrics", "/asyncapi"}


@pytest.fixture(scope="module", params=SERVICES)
def current(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, document(request.param)


def test_the_committed_openapi_snapshot_is_current(current: tuple[str, dict[str, Any]]) -> None:
    service, doc = current
    path = snapshot_path(service)
    assert path.exists(), f"{path} is missing; run `{REFRESH}`"
    committed = json.loads(path.read_text())
    problems = breaking_changes(committed, doc)
    assert not problems, (
        f"backward-incompatible change to {service}'s HTTP API (keep what clients use; add a route or field "
        "instead):\n" + "\n".join(problems)
    )
    changed = differences(committed, doc)
    assert not changed, (
        f"compatible change to {service}'s HTTP API not snapshotted; review it and run `{REFRESH}`:\n"
        + "\n".join(changed[:30])
        + (f"\n… and {len(changed) - 30} more" if len(changed) > 30 else "")
    )


def test_every_read_route_declares_its_answer(current: tuple[str, dict[str, Any]]) -> None:
    _, doc = current
    schemas = doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        if path in OPERATIONS or path.startswith("/membership-view/"):  # owned by the shared libraries
            continue
        answer = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in answer, f"GET {path} answers an undocumented object"
        model = schemas[answer["$ref"].rsplit("/", 1)[-1]]
        assert model.get("properties") and model.get("additionalProperties") is None, path


def test_a_snapshot_compared_with_itself_has_no_breaking_change(current: tuple[str, dict[str, Any]]) -> None:
    _, doc = current
    assert breaking_changes(doc, doc) == []


def test_a_field_removed_from_a_real_answer_is_caught(current: tuple[str, dict[str, Any]]) -> None:
    service, doc = current
    name = {"membership": "Member", "evaluation": "HomeResult", "feedback": "Stats"}[service]
    changed = copy.deepcopy(doc)
    field = next(iter(changed["components"]["schemas"][name]["properties"]))
    del changed["components"]["schemas"][name]["properties"][field]
    assert any(p.endswith(f".{field}: removed") for p in breaking_changes(doc, changed))


def api(parameters: list[dict[str, Any]], answer: dict[str, Any], **schemas: dict[str, Any]) -> dict[str, Any]:
    """A one-route document: `GET /things/{id}` answering `answer`."""
    return {
        "paths": {
            "/things/{id}": {
                "get": {
                    "parameters": parameters,
                    "responses": {"200": {"content": {"application/json": {"schema": answer}}}},
                }
            }
        },
        "components": {"schemas": schemas},
    }


ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 128}}
LIMIT = {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "maximum": 1000}}
STATUS = {"name": "status", "in": "query", "schema": {"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]}}
ITEM = {
    "type": "object",
    "title": "Item",
    "required": ["n", "on"],
    "properties": {"n": {"type": "integer"}, "on": {"type": "string", "format": "date"}},
}
THING = {
    "type": "object",
    "title": "Thing",
    "required": ["id", "kind", "items"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": ["x", "y"], "type": "string"},
        "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
    },
}
BASE = api([ID, LIMIT, STATUS], {"$ref": "#/components/schemas/Thing"}, Thing=THING, Item=ITEM)


def changed(
    parameters: list[dict[str, Any]] | None = None,
    thing: dict[str, Any] | None = None,
    item: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return api(
        [ID, LIMIT, STATUS] if parameters is None else parameters,
        {"$ref": "#/components/schemas/Thing"},
        Thing=THING if thing is None else thing,
        Item=ITEM if item is None else item,
    )


def with_props(schema: dict[str, Any], **props: Any) -> dict[str, Any]:
    kept = {k: v for k, v in {**schema["properties"], **props}.items() if v is not None}
    return {**schema, "properties": kept, "required": [r for r in schema["required"] if r in kept]}


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ({"paths": {}, "components": BASE["components"]}, "GET /things/{id}: removed"),
        (changed(parameters=[ID, STATUS]), "GET /things/{id} query parameter limit: removed"),
        (changed(parameters=[ID, {**LIMIT, "required": True}, STATUS]), "query parameter limit: newly required"),
        (
            changed(parameters=[ID, LIMIT, STATUS, {"name": "year", "in": "query", "required": True}]),
            "query parameter year: newly required",
        ),
        (
            changed(parameters=[ID, {**LIMIT, "schema": {"type": "integer", "maximum": 100}}, STATUS]),
            "query parameter limit: maximum lowered to 100",
        ),
        (
            changed(parameters=[{**ID, "schema": {"type": "integer"}}, LIMIT, STATUS]),
            "path parameter id: no longer accepts ['string']",
        ),
        (
            changed(parameters=[ID, LIMIT, {**STATUS, "schema": {"anyOf": [{"enum": ["a"]}, {"type": "null"}]}}]),
            "query parameter status: no longer accepts ['enum:b']",
        ),
        (changed(thing=with_props(THING, kind=None)), "GET /things/{id} 200.kind: removed"),
        (changed(thing={**THING, "required": ["id", "items"]}), "200.kind: no longer always present"),
        (changed(thing=with_props(THING, id={"type": "integer"})), "200.id: may now be ['integer']"),
        (
            changed(thing=with_props(THING, id={"anyOf": [{"type": "string"}, {"type": "null"}]})),
            "200.id: may now be ['null']",
        ),
        (changed(item=with_props(ITEM, n=None)), "200.items[].n: removed"),
        (
            changed(item=with_props(ITEM, on={"type": "string", "format": "date-time"})),
            "200.items[].on: format is now ['date-time']",
        ),
    ],
)
def test_the_api_compatibility_check_catches_breaking_changes(new: dict[str, Any], expected: str) -> None:
    problems = breaking_changes(BASE, new)
    assert any(p.endswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(changed(thing=with_props(THING, note={"type": "string"})), id="an optional answered field"),
        pytest.param(
            changed(thing={**with_props(THING, note={"type": "string"}), "required": ["id", "kind", "items", "note"]}),
            id="an answered field always present",
        ),
        pytest.param(
            changed(thing=with_props(THING, kind={"enum": ["x", "y", "z"], "type": "string"})), id="an enum value"
        ),
        pytest.param(changed(thing=with_props(THING, score={"type": "number"})), id="a field no longer null"),
        pytest.param(
            changed(parameters=[ID, LIMIT, STATUS, {"name": "year", "in": "query", "schema": {"type": "integer"}}]),
            id="an optional parameter",
        ),
        pytest.param(
            changed(parameters=[ID, {**LIMIT, "schema": {"type": "integer", "maximum": 5000}}, STATUS]),
            id="a bound loosened",
        ),
        pytest.param(
            changed(
                parameters=[ID, LIMIT, {**STATUS, "schema": {"anyOf": [{"enum": ["a", "b", "c"]}, {"type": "null"}]}}]
            ),
            id="a parameter value accepted",
        ),
        pytest.param(
            {**BASE, "paths": {**BASE["paths"], "/others": {"get": {"responses": {}}}}},
            id="a route",
        ),
    ],
)
def test_adding_to_an_api_or_narrowing_an_answer_is_compatible(new: dict[str, Any]) -> None:
    assert breaking_changes(BASE, new) == []


def test_the_difference_summary_names_what_was_added_removed_and_changed() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}}
    assert differences(old, {"b": {"c": 5, "d": 3}, "e": 4}) == ["- /a", "~ /b/c", "+ /e"]
