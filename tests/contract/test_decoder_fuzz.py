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
    envelope = {"specversion": "1.0", "id": data.draw(st.text(max_size=20)), "source": "fuzz", "type": event_type,
                "data": data.draw(json_values)}
    if data.draw(st.booleans()):
        envelope["time"] = data.draw(st.text(max_size=30))
    decodes_or_refuses(topic, json.dumps(envelope).encode())


def test_pathological_shapes_are_refused() -> None:
    for value in (b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                  b"\xff\xfe" + "{}".encode("utf-16-le"), b"\x00" * 1000, b"x" * (1024 * 1024 + 1)):
        decodes_or_refuses("membership.commands", value)
