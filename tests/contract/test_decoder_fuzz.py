"""Fuzzing the decoder: whatever bytes arrive, `decode` returns a validated event or raises
`DecodeError` with a dead-letter code; it never raises anything else and never hangs."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unionhub_contracts import TOPICS, DecodeError, decode
from unionhub_contracts.catalogue import MESSAGES
from unionhub_contracts.codec import DecodeErrorCode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
# Strict JSON (no Infinity): what a binary-mode value can be, since it is parsed on its own.
strict_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
topics = st.sampled_from([t.name for t in TOPICS])


def decodes_or_refuses(topic: str, value: bytes) -> None:
    try:
        event = decode(topic, value)
    except DecodeError as error:
        assert error.code in set(DecodeErrorCode)
        assert error.message
    else:
        assert event.type in MESSAGES[topic]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topics, st.binary(max_size=300))
def test_random_bytes(topic: str, value: bytes) -> None:
    decodes_or_refuses(topic, value)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topics, json_values)
def test_random_json(topic: str, value: object) -> None:
    decodes_or_refuses(topic, json.dumps(value).encode())  # stdlib: integers of any size


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topics, st.data())
def test_envelopes_of_known_types_with_random_data(topic: str, data: st.DataObject) -> None:
    event_type = data.draw(st.sampled_from(sorted(MESSAGES[topic])))
    envelope = {
        "specversion": "1.0",
        "id": data.draw(st.text(max_size=20)),
        "source": "fuzz",
        "type": event_type,
        "data": data.draw(json_values),
    }
    if data.draw(st.booleans()):
        envelope["time"] = data.draw(st.text(max_size=30))
    decodes_or_refuses(topic, json.dumps(envelope).encode())


def test_pathological_shapes_are_refused() -> None:
    for value in (
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe" + "{}".encode("utf-16-le"),
        b"\x00" * 1000,
        b"x" * (1024 * 1024 + 1),
    ):
        decodes_or_refuses("membership.commands", value)


def binary_record(envelope: dict[str, object]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The binary-mode form of a structured envelope: attributes as `ce_*` headers."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in envelope.items() if k not in ("data", "datacontenttype")]
    headers.append(("content-type", b"application/json"))
    return json.dumps(envelope["data"]).encode(), headers


def outcome(topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> object:
    try:
        return decode(topic, value, headers).model_dump()
    except DecodeError as error:
        return (error.code, error.event_id, error.event_type)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topics, st.data())
def test_binary_mode_decodes_and_refuses_exactly_as_structured_mode(topic: str, data: st.DataObject) -> None:
    event_type = data.draw(st.sampled_from(sorted(MESSAGES[topic])))
    envelope: dict[str, object] = {
        "specversion": "1.0",
        "id": data.draw(st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)),
        "source": data.draw(st.sampled_from(["hr/ft", "fuzz", "a b"])),
        "type": event_type,
        "data": data.draw(
            strict_json_values
            | st.fixed_dictionaries(
                {},
                optional={
                    "member_id": st.text(max_size=8),
                    "union_id": st.just("u-1"),
                    "joined_on": st.just("2018-03-01"),
                },
            )
        ),
    }
    if data.draw(st.booleans()):
        envelope["time"] = data.draw(st.sampled_from(["2018-05-20T10:00:00+08:00", "yesterday", "2018-05-20T10:00:00"]))
    value, headers = binary_record(envelope)
    assert outcome(topic, value, headers) == outcome(topic, json.dumps(envelope).encode())


def test_a_binary_mode_command_is_the_same_event_as_its_structured_twin() -> None:
    envelope = {
        "specversion": "1.0",
        "id": "c-1",
        "source": "hr-system/fengtai",
        "type": "member.enroll",
        "time": "2018-03-01T09:00:00+08:00",
        "correlationid": "batch-7",
        "data": {"member_id": "m-1", "union_id": "u-1", "joined_on": "2018-03-01"},
    }
    value, headers = binary_record(envelope)
    event = decode("membership.commands", value, headers)
    assert event == decode("membership.commands", json.dumps(envelope).encode())
    assert (event.source, event.id, event.correlationid) == ("hr-system/fengtai", "c-1", "batch-7")


def test_binary_mode_refusals_name_their_dead_letter_code() -> None:
    _, headers = binary_record({"specversion": "1.0", "id": "c-2", "source": "s", "type": "member.enroll", "data": {}})
    assert outcome("membership.commands", b"{not json", headers) == (DecodeErrorCode.NOT_JSON, "c-2", "member.enroll")
    assert outcome("membership.commands", b"{}", headers)[0] == DecodeErrorCode.INVALID_DATA
    text_plain = [*headers[:-1], ("content-type", b"text/plain")]
    assert outcome("membership.commands", b'{"member_id": "m"}', text_plain)[0] == DecodeErrorCode.NOT_CLOUDEVENT
    latin1 = [("ce_specversion", b"1.0"), ("ce_id", "é".encode("latin-1"))]
    assert outcome("membership.commands", b"{}", latin1)[0] == DecodeErrorCode.NOT_CLOUDEVENT
    structured = [*headers, ("content-type", b"application/cloudevents+json")]
    assert outcome("membership.commands", b"{}", structured)[0] == DecodeErrorCode.NOT_CLOUDEVENT  # read as structured


def test_a_source_must_be_a_uri_reference() -> None:
    envelope = {
        "specversion": "1.0",
        "id": "c-3",
        "source": "hr system",
        "type": "member.enroll",
        "data": {"member_id": "m-1", "union_id": "u-1", "joined_on": "2018-03-01"},
    }
    assert outcome("membership.commands", json.dumps(envelope).encode())[0] == DecodeErrorCode.NOT_CLOUDEVENT


def test_a_header_without_a_value_is_refused_not_crashed_on() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", None), ("content-type", None)]
    assert outcome("membership.commands", b"{}", headers)[0] == DecodeErrorCode.NOT_CLOUDEVENT  # type: ignore[arg-type]
