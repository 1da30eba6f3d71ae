"""The list of personal fields the operators' tools mask is complete, and masking hides them."""

from __future__ import annotations

from typing import Any

from unionhub_contracts import MESSAGES
from unionhub_contracts.personal import NOT_PERSONAL, PERSONAL_FIELDS, masked


def free_text_fields(schema: dict[str, Any]) -> set[str]:
    """Properties (at any depth) that take any string: no pattern, format, enum or const."""
    definitions = schema.get("$defs", {})
    found: set[str] = set()

    def walk(node: Any, name: str | None) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, name)
            return
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            walk(definitions[node["$ref"].rsplit("/", 1)[1]], name)
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
            assert name is not None
            found.add(name)
        for key in ("anyOf", "oneOf", "allOf"):
            walk(node.get(key, []), name)
        if "items" in node:
            walk(node["items"], name)
        for child, sub in node.get("properties", {}).items():
            walk(sub, child)

    walk(schema, None)
    return found


def test_every_free_text_field_of_every_message_is_declared_personal_or_not() -> None:
    undeclared = {
        (type_, field)
        for types in MESSAGES.values()
        for type_, spec in types.items()
        for field in free_text_fields(spec.data.model_json_schema())
        if field not in PERSONAL_FIELDS | NOT_PERSONAL
    }
    assert undeclared == set(), "declare each in unionhub_contracts.personal (PERSONAL_FIELDS or NOT_PERSONAL)"


def test_the_declared_fields_still_exist() -> None:
    used = {
        field
        for types in MESSAGES.values()
        for spec in types.values()
        for field in free_text_fields(spec.data.model_json_schema())
    }
    assert (PERSONAL_FIELDS | NOT_PERSONAL) - used == set()


def test_masking_hides_personal_values_at_any_depth_and_keeps_the_rest() -> None:
    event = {
        "id": "c-1",
        "data": {"member_id": "m-1", "display_name": "Wang Fang", "items": [{"text": "the canteen", "score": 3}]},
        "reason": None,
    }
    assert masked(event) == {
        "id": "c-1",
        "data": {
            "member_id": "m-1",
            "display_name": "<masked: 9 chars>",
            "items": [{"text": "<masked: 11 chars>", "score": 3}],
        },
        "reason": None,
    }


def test_a_string_in_a_field_no_contract_defines_is_masked_a_known_one_shown() -> None:
    # A poison message is the one that does not follow the schema: a misspelt name is hidden too.
    poison = {"type": "member.enroll", "data": {"displayName": "Li Wei", "joined_on": "someday", "level": "district"}}
    assert masked(poison) == {
        "type": "member.enroll",
        "data": {"displayName": "<masked: 6 chars>", "joined_on": "someday", "level": "district"},
    }
    assert masked("a whole value that is a string") == "<masked: 30 chars>"
    assert masked({"services": ["canteen"], "name": ["Wang", "Fang"]}) == {
        "services": ["canteen"],
        "name": ["<masked: 4 chars>", "<masked: 4 chars>"],
    }
