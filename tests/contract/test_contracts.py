"""Every contract model round-trips, and no change breaks a v1 producer or consumer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from unionhub_contracts import MESSAGES, DecodeError, decode, encode
from unionhub_contracts.compat import breaking_changes, is_event_topic
from unionhub_contracts.snapshot import schemas

from .examples import EXAMPLES

SNAPSHOT = Path(__file__).resolve().parents[2] / "contracts" / "schemas"
ALL_TYPES = [(topic, name) for topic, types in MESSAGES.items() for name in types]


def envelope(type_: str, data: dict, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": "c-1",
            "source": "hr",
            "type": type_,
            "time": "2018-03-01T09:00:00+08:00",
            "data": data,
            **extra,
        }
    )


def test_every_catalogued_message_has_an_example() -> None:
    assert {(t, n) for t, types in EXAMPLES.items() for n in types} == set(ALL_TYPES)


@pytest.mark.parametrize(("topic", "type_"), ALL_TYPES)
def test_each_message_round_trips_through_the_wire_format(topic: str, type_: str) -> None:
    decoded = decode(topic, envelope(type_, EXAMPLES[topic][type_]))
    outgoing = encode(
        event_id="e-1",
        event_type=type_,
        data=decoded.data,
        source="membership",
        time=datetime(2018, 3, 1, tzinfo=UTC),
        correlation_id="c-1",
        key=None,
    )
    again = decode(topic, outgoing.value)
    assert again.data == decoded.data
    assert again.type == type_ and again.correlationid == "c-1"
    # what goes out equals what came in, but for personal data and defaults filled in
    sent = {k: v for k, v in EXAMPLES[topic][type_].items() if k != "display_name"}
    assert {k: v for k, v in orjson.loads(outgoing.value)["data"].items() if k in sent} == sent


# A federation: the one shape of union.registered with none of its optional fields (the
# others need them by their level).
WITHOUT_OPTIONAL = {
    "union.registered": {"union_id": "bj", "name": "Beijing", "level": "federation", "founded_on": "1949-10-01"}
}


@pytest.mark.parametrize(("topic", "type_"), [(t, n) for t, n in ALL_TYPES if is_event_topic(t)])
def test_an_event_without_its_optional_fields_decodes(topic: str, type_: str) -> None:
    # A newer reader of an older producer's events (or of the old events still on the topic):
    # a field added as optional is absent there, and the event must still be read.
    model = MESSAGES[topic][type_].data
    required = {name for name, spec in model.model_fields.items() if spec.is_required()}
    data = WITHOUT_OPTIONAL.get(type_) or {k: v for k, v in EXAMPLES[topic][type_].items() if k in required}
    assert set(data) == required
    assert decode(topic, envelope(type_, data)).data.model_dump(mode="json", include=required) == data


def test_personal_data_never_leaves_in_the_enrolled_event_model() -> None:
    assert "display_name" not in MESSAGES["membership.events"]["member.enrolled"].data.model_fields


def test_unknown_fields_in_data_are_ignored_and_not_kept() -> None:
    data = {**EXAMPLES["membership.commands"]["member.leave"], "salary": 9000}
    decoded = decode("membership.commands", envelope("member.leave", data))
    assert not hasattr(decoded.data, "salary")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"\xff\xfe not json", "not_json"),
        (b"[1, 2]", "not_cloudevent"),
        (orjson.dumps({"id": "x", "type": "member.leave", "data": {}}), "not_cloudevent"),
        (envelope("member.vanish", {}), "unknown_type"),
        (envelope("member.leave", {"member_id": "m-1", "left_on": "2018-02-30", "reason": "x"}), "invalid_data"),
        (envelope("member.enroll", {"member_id": "m-1", "union_id": "u", "joined_on": 20180301}), "invalid_data"),
        (b"{" + b" " * (1024 * 1024) + b"}", "too_large"),
    ],
)
def test_undecodable_values_are_classified_for_the_dead_letter_topic(value: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode("membership.commands", value)
    assert caught.value.code == code


def test_a_decode_error_keeps_the_readable_id_and_type_but_never_the_input() -> None:
    value = envelope(
        "member.enroll", {"member_id": "m-1", "union_id": "u", "joined_on": "x", "display_name": "Secret Name"}
    )
    with pytest.raises(DecodeError) as caught:
        decode("membership.commands", value)
    assert (caught.value.event_id, caught.value.event_type) == ("c-1", "member.enroll")
    assert "joined_on" in caught.value.message and "Secret Name" not in caught.value.message


def test_a_decode_error_message_stays_short_whatever_keys_the_input_has() -> None:
    # Invalid dict keys are part of each error's location: 5 keys of 190,000 characters
    # made a 950 kB reason, copied into command.rejected and the DLQ headers.
    thresholds = {"k" * 190_000 + str(n): "not a threshold" for n in range(5)}
    data = {**EXAMPLES["evaluation.commands"]["campaign.open"], "star_thresholds": thresholds}
    with pytest.raises(DecodeError) as caught:
        decode("evaluation.commands", envelope("campaign.open", data))
    assert caught.value.code == "invalid_data"
    assert "star_thresholds." in caught.value.message and len(caught.value.message) <= 1000


def campaign_open_with(valid: str, literal: str) -> bytes:
    """A `campaign.open` whose data says `literal` where the valid example says `valid`
    (literals no JSON encoder here writes)."""
    data = orjson.dumps(EXAMPLES["evaluation.commands"]["campaign.open"]).decode()
    assert valid in data
    return envelope("campaign.open", {}).replace(b'"data":{}', b'"data":' + data.replace(valid, literal).encode())


@pytest.mark.parametrize(
    ("topic", "value"),
    [
        # Python's and pydantic's JSON readers take these literals; the services cannot compute with them.
        ("evaluation.commands", campaign_open_with('"member":0.5', '"member":NaN')),
        ("evaluation.commands", campaign_open_with('"unit":0.25', '"unit":Infinity')),
        # Past PostgreSQL's integer: the insert failed for good and the command was dead-lettered.
        ("evaluation.commands", campaign_open_with('"min_member_ratings":1', '"min_member_ratings":' + "9" * 20)),
        # An instant far ahead moved feedback's event clock for good: every open opinion overdue.
        (
            "feedback.commands",
            envelope(
                "visit.log", {**EXAMPLES["feedback.commands"]["visit.log"], "visited_at": "9999-12-31T00:00:00+08:00"}
            ),
        ),
        # An id no read route can address (a path segment cannot hold "/").
        (
            "membership.commands",
            envelope("member.enroll", {**EXAMPLES["membership.commands"]["member.enroll"], "member_id": "m/1"}),
        ),
    ],
)
def test_values_the_schema_allows_but_no_service_can_keep_are_invalid(topic: str, value: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(topic, value)
    assert caught.value.code == "invalid_data"
    assert caught.value.event_id == "c-1"  # so the sender gets a rejection with code invalid


def test_an_event_may_name_a_time_to_come() -> None:
    # opinion.assigned's due_at lies ahead by the answer deadline: consumers must read it.
    due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    data = {**EXAMPLES["feedback.events"]["opinion.assigned"], "due_at": due}
    assert decode("feedback.events", envelope("opinion.assigned", data)).data.due_at.isoformat() == due


def test_strings_are_not_coerced_into_numbers() -> None:
    scores = {**EXAMPLES["evaluation.commands"]["rating.submit"]["scores"], "work": "88"}
    data = {**EXAMPLES["evaluation.commands"]["rating.submit"], "scores": scores}
    with pytest.raises(DecodeError):
        decode("evaluation.commands", envelope("rating.submit", data))


def test_the_committed_schema_snapshot_is_current() -> None:
    current = schemas()
    committed = {str(p.relative_to(SNAPSHOT)): json.loads(p.read_text()) for p in SNAPSHOT.rglob("*.json")}
    problems = [f"{name}: removed from the catalogue" for name in committed if name not in current]
    for name, schema in committed.items():
        if name in current:
            event = is_event_topic(name.split("/", 1)[0])
            problems += [f"{name}: {p}" for p in breaking_changes(schema, current[name], event=event)]
    assert not problems, "backward-incompatible contract change (publish a new type version instead):\n" + "\n".join(
        problems
    )
    stale = sorted(n for n in current if committed.get(n) != current[n])
    assert not stale, (
        f"compatible change not snapshotted; run `python -m unionhub_contracts.snapshot --write contracts/schemas`: {stale}"
    )


BASE = {
    "type": "object",
    "required": ["a"],
    "properties": {"a": {"type": "string", "maxLength": 10}, "b": {"enum": ["x", "y"]}, "c": {"type": "integer"}},
}


@pytest.mark.parametrize("event", [False, True], ids=["command", "event"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"properties": {"a": BASE["properties"]["a"], "b": BASE["properties"]["b"]}}, "data.c: removed"),
        ({"required": ["a", "c"]}, "data.c: newly required"),
        ({"properties": {**BASE["properties"], "c": {"type": "string"}}}, "data.c: no longer accepts ['integer']"),
        ({"properties": {**BASE["properties"], "b": {"enum": ["x"]}}}, "data.b: no longer accepts ['enum:y']"),
        (
            {"properties": {**BASE["properties"], "a": {"type": "string", "maxLength": 5}}},
            "data.a: maxLength lowered to 5",
        ),
    ],
)
def test_the_compatibility_check_catches_breaking_changes(change: dict, expected: str, event: bool) -> None:
    assert expected in breaking_changes(BASE, {**BASE, **change}, event=event)


def with_properties(**changed: object) -> dict:
    return {**BASE, "properties": {**BASE["properties"], **changed}}


@pytest.mark.parametrize("event", [False, True], ids=["command", "event"])
def test_adding_an_optional_field_is_compatible(event: bool) -> None:
    assert breaking_changes(BASE, with_properties(d={"type": "string"}), event=event) == []


# What a newer producer may write and an older reader, validating strictly, refuses.
WIDENED = [
    (with_properties(b={"enum": ["x", "y", "z"]}), "data.b: may now be ['enum:z']"),
    (with_properties(b={"type": "string"}), "data.b: may now be ['string']"),
    (with_properties(c={"anyOf": [{"type": "integer"}, {"type": "null"}]}), "data.c: may now be ['null']"),
    (with_properties(a={"type": "string", "maxLength": 20}), "data.a: maxLength raised to 20"),
    (with_properties(a={"type": "string"}), "data.a: maxLength dropped"),
    ({**BASE, "required": []}, "data.a: no longer required"),
]


@pytest.mark.parametrize(("new", "expected"), WIDENED)
def test_a_new_enum_value_or_a_wider_value_in_an_event_is_breaking(new: dict, expected: str) -> None:
    # Services reading another's events may be older than its producer (any upgrade order
    # works): a value their model does not allow fails their decoding. A new type version instead.
    problems = breaking_changes(BASE, new, event=True)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize(("new", "expected"), WIDENED)
def test_a_new_enum_value_or_a_wider_value_in_a_command_is_compatible(new: dict, expected: str) -> None:
    # The service, a command's only reader, is upgraded before any sender uses the value.
    assert breaking_changes(BASE, new, event=False) == []


def test_a_new_enum_value_inside_a_list_or_an_optional_field_is_seen() -> None:
    old = {
        "type": "object",
        "$defs": {"Service": {"enum": ["water", "rest"], "type": "string"}},
        "properties": {
            "services": {"type": "array", "items": {"$ref": "#/$defs/Service"}},
            "kind": {"anyOf": [{"$ref": "#/$defs/Service"}, {"type": "null"}], "default": None},
        },
    }
    new = {**old, "$defs": {"Service": {"enum": ["water", "rest", "wifi"], "type": "string"}}}
    assert breaking_changes(old, new, event=True) == [
        "data.services[]: may now be ['enum:wifi'], which older readers reject",
        "data.kind: may now be ['enum:wifi'], which older readers reject",
    ]
    assert breaking_changes(old, new, event=False) == []
    assert breaking_changes(new, old, event=False) == [
        "data.services[]: no longer accepts ['enum:wifi']",
        "data.kind: no longer accepts ['enum:wifi']",
    ]


def test_a_new_union_kind_breaks_union_registered_and_not_union_register() -> None:
    # union.register (a command) and union.registered (an event) share UnionData: a new kind
    # is compatible for the one and breaking for the other, so it needs union.registered.v2.
    found = {}
    for name in ("membership.commands/union.register.json", "membership.events/union.registered.json"):
        old = schemas()[name]
        new = json.loads(json.dumps(old))
        new["$defs"]["UnionKind"]["enum"].append("cooperative")
        found[name] = breaking_changes(old, new, event=is_event_topic(name.split("/")[0]))
    assert found == {
        "membership.commands/union.register.json": [],
        "membership.events/union.registered.json": [
            "data.kind: may now be ['enum:cooperative'], which older readers reject"
        ],
    }
    assert not is_event_topic("evaluation.work-scores")  # read by evaluation alone, like commands


def test_the_rejection_codes_are_the_published_ones() -> None:
    """`RejectionCode` lives in the domain kernel (`unionhub_domain`) but is part of the
    contract: adding a code is a contract change (consumers accept unknown codes), removing or
    renaming one breaks consumers. This list changes only with the contract's changelog."""
    from unionhub_contracts import RejectionCode

    assert [code.value for code in RejectionCode] == [
        "invalid",
        "conflict",
        "not_found",
        "not_active",
        "already_active",
        "hierarchy",
        "date_order",
        "same_union",
        "not_a_member",
        "closed",
        "not_in_campaign",
        "invalid_weights",
        "invalid_thresholds",
        "invalid_homes",
        "forbidden",
        "not_responded",
        "already_rated",
    ]
