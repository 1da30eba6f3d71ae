"""The msgspec decoder of `evaluation.work-scores` against the reference: for any record,
`decode_work_scored` and `codec.decode` both accept it with equal data, or both refuse it
with the same dead letter (code, message, id, type, source); and whatever the fast path
takes on its own, the reference takes too and reads the same."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unionhub_contracts import DecodeError, decode, fast
from unionhub_contracts.fast import decode_work_scored

from .examples import EXAMPLES
from .test_decoder_fuzz import json_values

TOPIC = "evaluation.work-scores"
DATA: dict[str, Any] = EXAMPLES[TOPIC]["work.scored"]
Headers = list[tuple[str, Any]]


# --- what a decoder makes of a record -----------------------------------------------------


def fields(data: fast.WorkScoredData) -> tuple[object, ...]:
    """Everything a consumer reads of a work item, -0.0 and the instant's offset included."""
    item_id, worker_id, post_id, score, scored_at, timestamp = data
    return (
        item_id,
        worker_id,
        post_id,
        score,
        math.copysign(1.0, score),
        scored_at,
        scored_at.utcoffset(),
        timestamp,
    )


def outcome(decoder: Callable[[bytes | None, Headers | None], Any], value: bytes, headers: Headers | None) -> object:
    try:
        data = decoder(value, headers)
    except DecodeError as error:
        return ("refused", error.code, error.message, error.event_id, error.event_type, error.event_source)
    return ("accepted", *fields(data))


def reference(value: bytes | None, headers: Headers | None = None) -> fast.WorkScoredData:
    data = decode(TOPIC, value, headers).data
    return (data.item_id, data.worker_id, data.post_id, data.score, data.scored_at, data.scored_at.timestamp())


def forget() -> None:
    """A fresh fast decoder: each example starts from the same state, so a failure replays."""
    fast._ids.clear()
    fast._sources.clear()


def agree(records: Sequence[tuple[bytes, Headers | None]]) -> None:
    """Records decoded in turn (the fast decoder remembers ids and sources): both decoders
    decide alike on each."""
    forget()
    for value, headers in records:
        assert outcome(decode_work_scored, value, headers) == outcome(reference, value, headers)


# --- JSON written by hand: repeated keys, raw bytes, any escaping --------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text as is (a number too long for Python's `json`, invalid UTF-8, …)."""

    text: bytes


@dataclass(frozen=True)
class Obj:
    """A JSON object as its key/value pairs, in order, keys repeated or not."""

    pairs: tuple[tuple[str | Raw, Any], ...]

    def get(self, key: str) -> Any:
        return next((v for k, v in reversed(self.pairs) if k == key), None)

    def without(self, key: str) -> Obj:
        return Obj(tuple(p for p in self.pairs if p[0] != key))

    def with_(self, key: str | Raw, value: Any, *, at: int | None = None) -> Obj:
        pairs = [(k, v) for k, v in self.pairs if k != key]
        pairs.insert(len(pairs) if at is None else min(at, len(pairs)), (key, value))
        return Obj(tuple(pairs))

    def plus(self, key: str | Raw, value: Any, *, at: int) -> Obj:
        pairs = list(self.pairs)
        pairs.insert(min(at, len(pairs)), (key, value))
        return Obj(tuple(pairs))


def dumps(value: Any, ascii_only: bool) -> bytes:
    """JSON text; lone surrogates become `\\udxxx` escapes or, unescaped, invalid UTF-8."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        members = (dumps(k, ascii_only) + b":" + dumps(v, ascii_only) for k, v in value.pairs)
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, dict):
        return dumps(Obj(tuple(value.items())), ascii_only)
    if isinstance(value, list):
        return b"[" + b",".join(dumps(v, ascii_only) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# --- strategies: mostly valid, each part now and then odd ----------------------------------


def sometimes(odds: int) -> st.SearchStrategy[bool]:
    """True one time in about `odds` (Hypothesis favours the ends of a range: not used here)."""
    return st.integers(0, 100 * odds).map(lambda i: 50 <= i < 150)


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], odds: int = 4) -> st.SearchStrategy[Any]:
    """`valid`, but one time in about `odds` `odd`."""
    return sometimes(odds).flatmap(lambda is_odd: odd if is_odd else valid)


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
ID_CHARS = ALNUM + "._:@-"
PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
NOW = datetime.now(UTC)
EAST = timezone(timedelta(hours=8))
WEST = timezone(-timedelta(hours=11, minutes=30))

valid_ids = st.builds(str.__add__, st.sampled_from(ALNUM), st.text(ID_CHARS, max_size=20)) | st.sampled_from(
    ["a" * 128, "9" + "-" * 127, "Z" + "@" * 127, "w-1", "p-1"]
)
# Values ids and sources both may take: one seen valid in a field is offered to the others.
either = st.sampled_from(["w-1", "p-1", "mill", "hr/ft", "a/b", "~x", "-w", "_w", ".w", "w 1", "w\n", "é", "W" * 129])
odd_text = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "w-1\n",
        "w-1\r\n",
        "w-1 ",
        " w-1",
        "w-1\x00",
        "w\x7f1",
        "w\u00851",  # NEL
        "w\u20281",  # line separator
        "wé",
        "w\u212a",  # Kelvin sign: a K to case-insensitive matching
        "Ｗ-1",  # fullwidth
        "w-١",  # Arabic-Indic digit
        "w\ud800",  # lone surrogates
        "\udc00",
        "w\U0001f600",
        "/",
        "a/",
        "w//1",
        "w\\1",
        'w"1',
        "a" * 129,
        "Z" + "@" * 128,
        "x" * 256,
        "x" * 257,
        "é" * 256,
        "é" * 257,
        "\U0001f600" * 256,
        "\U0001f600" * 257,
        "s" * 512,
        "s" * 513,
    ]
)
odd_ids = st.one_of(
    odd_text, either, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*", fullmatch=True), st.text(max_size=12)
)
valid_sources = st.text(PRINTABLE, min_size=1, max_size=30) | st.sampled_from(
    ["mill", "hr-system/fengtai", "urn:x:y", "https://mill.example/a?b=c#d", "s" * 512]
)
envelope_ids = mostly(valid_ids | st.text(min_size=1, max_size=20), odd_text | st.just(""))


def rfc3339(at: datetime, digits: str, sep: str, zone: str) -> str:
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}{sep}{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
        f"{'.' + digits if digits else ''}{zone}"
    )


# Far enough from the one-day horizon that the two decoders, run a moment apart, agree.
HORIZON_SAFE = [timedelta(days=-3650), timedelta(days=-1), timedelta(0), timedelta(hours=20), timedelta(hours=28)]
HORIZON_SAFE += [timedelta(days=2), timedelta(days=400)]
valid_zones = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+08:00", "-11:30", "+0800", "-0000", "+23:59", "-23:59"])
valid_instants = st.one_of(
    st.builds(
        rfc3339,
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(2024, 12, 31))
        | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.integers(0, 9).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))
        | st.sampled_from(["9999995", "9999999", "0000005", "0000015", "1234565", "999999999", "000000"]),
        st.sampled_from("TTTTt "),
        valid_zones,
    ),
    st.sampled_from(HORIZON_SAFE).flatmap(
        lambda delta: st.sampled_from(
            [
                (NOW + delta).isoformat(),
                (NOW + delta).replace(microsecond=0).isoformat(),
                (NOW + delta).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                (NOW + delta).astimezone(EAST).isoformat(),
                (NOW + delta).astimezone(WEST).isoformat(),
            ]
        )
    ),
)
odd_instants = st.one_of(
    st.builds(  # RFC 3339 but for a part or two
        lambda y, mo, d, sep, h, mi, sec, f, z: f"{y}-{mo}-{d}{sep}{h}:{mi}{sec}{f}{z}",
        st.sampled_from(["2018", "2018", "0000", "9999", "10000", "+2018", "18"]),
        st.sampled_from(["06", "06", "02", "00", "13", "6"]),
        st.sampled_from(["01", "29", "30", "31", "00", "32", "1"]),
        st.sampled_from(["T", "T", "t", " ", "_", "x", "", "TT"]),
        st.sampled_from(["08", "23", "24", "8"]),
        st.sampled_from(["00", "59", "60"]),
        st.sampled_from([":00", ":59", ":60", "", ":5"]),
        st.sampled_from(["", ".5", ".", ",5", ".123456", ".1234567"]),
        st.sampled_from(["Z", "+08:00", "+0800", "", "+08", "+24:00", "+08:00:30", "+8:00", " Z", "UTC", "+08:60"])
        | st.sampled_from(["−08:00", "+08:00\n", "Z\n", "ZZ"]),
    ),
    st.sampled_from(
        [
            "2018-06-01",
            "2018-W22-5",
            "2018-W22-5T08:00:00Z",
            "2018-152",
            "2018-152T08:00:00Z",
            "20180601T080000Z",
            "2018-06-01T08Z",
            "2018-06-01T08:00Z",
            "2018-06-01T08:00:00.Z",
            "2018-06-30T23:59:60Z",
            "2016-12-31T23:59:60Z",
            "2018-02-29T00:00:00Z",
            "2018-06-01T08:00:00Z ",
            " 2018-06-01T08:00:00Z",
            "+2018-06-01T08:00:00Z",
            "2018-06-01T08:00:00+08:00[Asia/Shanghai]",
            "now",
            "",
            "1528000000",
        ]
    ),
    st.datetimes().map(lambda at: at.isoformat()),  # no zone
    st.integers(0, 2**40) | st.floats(0, 2e9),
    st.sampled_from([Raw(b'"2018-06-01T08:00:0\\u0030Z"'), Raw(b'"2018-06-01T08:00:00\\u002b08:00"')]),
)
instants = mostly(valid_instants, odd_instants)
valid_scores = st.one_of(
    st.floats(0, 100),
    st.integers(0, 100),
    st.sampled_from([-0.0, 0, 0.0, 100, 100.0, 99.99999999999999, 5e-324]),
    st.sampled_from(["5E1", "5e+1", "1e-400", "-1e-400", "-0", "-0.0", "0e5", "100.000000000000001", "1E2"])
    .map(str.encode)
    .map(Raw),
    st.sampled_from([b"50." + b"1" * 500, b"0." + b"0" * 600 + b"1", b"1" + b"0" * 300 + b"e-299"]).map(Raw),
)
odd_scores: st.SearchStrategy[Any] = st.one_of(
    st.floats(-1, 101),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.sampled_from([100.0000001, -5e-324, True, False, None, "50", "", [], {}]),
    st.sampled_from(
        [
            b"1e400",
            b"-1e400",
            b"050",
            b"NaN",
            b"Infinity",
            b"-Infinity",
            b"1.",
            b".5",
            b"+1",
            b"0x10",
            b"1_0",
            b"9" * 5000,
            b"5" + b"0" * 4400 + b"e-4399",
            b"1e99999999999999999999",
        ]
    ).map(Raw),
)
scores = mostly(valid_scores, odd_scores)
wrong_types = st.sampled_from([0, -1, 1.5, True, False, None, [], ["x"], {}, {"a": 1}, "x", ""]) | json_values
spec_versions = mostly(
    st.just("1.0") | st.just(Raw(b'"1\\u002e0"')),
    st.sampled_from(["1", "1.00", "0.3", "1.0 ", " 1.0", "1.0\n", "", Raw(b"1.0"), Raw(b"1"), None]),
)
types = mostly(
    st.just("work.scored") | st.just(Raw(b'"work\\u002escored"')),
    st.sampled_from(["Work.scored", "work.scored\n", "work.scored ", "work.Scored", "rating.submit", "campaign.open"])
    | st.sampled_from(["", "x" * 129, "work\u2024scored", None, 1]),
)
content_types = mostly(
    st.just("application/json"),
    st.sampled_from(["application/json; charset=utf-8", "Application/JSON", "text/json", "application/json\n"])
    | st.sampled_from(["application/cloudevents+json", "", None, 1]),
)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["x", "traceparent", "partitionkey", "dataschema", "ID", "Data", "time ", "scored_at\x00"]),
    st.sampled_from(
        [
            b'"\\u0069d"',
            b'"\\ud800"',
            b'"\xff"',
            b'"\xc3"',
            b'"\xed\xa0\x80"',
            b'"\xf4\x90\x80\x80"',
            b'"\xc0\xaf"',
            b'"a\x01"',
            b'"a\\x"',
            b'"\\u0073core"',
            b'"scored\\u005fat"',
        ]
    ).map(Raw),
)
# In an unknown field: values pydantic's JSON parser refuses (msgspec, skipping them, may not) …
unreadable = st.sampled_from(
    [
        b'"\\ud800"',
        b'"\\udc00"',
        b'"\\ud800\\u0041"',
        b'"\xff"',
        b'"a\xc3"',
        b'"\xed\xa0\x80"',
        b'"\xc0\xaf"',
        b'"\xf4\x90\x80\x80"',
        b'"\x01"',
        b'"\t"',
        b'"\\x"',
        b'"\\u12G4"',
        b"NaN",
        b"Infinity",
        b"01",
        b"tru",
        b"[1,]",
        b'{"a":1,}',
        b"9" * 4301,
        b"-" + b"9" * 4300,
        b"9" * 5000 + b".5",
        b"1" * 4301 + b"e-4300",
    ]
).map(Raw)
# … and values it reads.
readable = st.sampled_from(
    [
        b'"\\ud83d\\ude00"',
        b'"\xef\xbf\xbf"',
        b'"\xf4\x8f\xbf\xbf"',
        b'"\x7f"',
        b'"\\/"',
        b"1e400",
        b"-1e400",
        b"1e99999999999999999999",
        b"9" * 4299,
        b"9" * 4300,
        b"0." + b"9" * 5000,
        b"-0",
    ]
).map(Raw)
deep = st.one_of(
    st.sampled_from([150, 198, 199, 200, 201, 202, 250, 1000]).map(lambda n: Raw(b"[" * n + b"1" + b"]" * n)),
    st.sampled_from([150, 198, 199, 200, 201, 202]).map(lambda n: Raw(b'{"a":' * n + b"1" + b"}" * n)),
)
extras = st.one_of(json_values, unreadable, readable, deep)


DATA_ODDS = {
    "item_id": odd_ids,
    "worker_id": odd_ids,
    "post_id": odd_ids,
    "score": odd_scores,
    "scored_at": odd_instants,
}


@st.composite
def data_objects(draw: st.DrawFn, names: st.SearchStrategy[str], odd: bool = True) -> Obj:
    """`data` of a work item: with `odd`, a field or two now and then odd."""
    idents = mostly(names | valid_ids, odd_ids, odds=6) if odd else names | valid_ids
    data = Obj(
        (
            ("item_id", draw(idents)),
            ("worker_id", draw(idents)),
            ("post_id", draw(idents)),
            ("score", draw(mostly(valid_scores, odd_scores, odds=6) if odd else valid_scores)),
            ("scored_at", draw(mostly(valid_instants, odd_instants, odds=6) if odd else valid_instants)),
        )
    )
    if draw(st.booleans()):
        data = Obj(tuple(draw(st.permutations(data.pairs))))
    return mutated(draw, data, DATA_ODDS) if odd else data


def envelope_odds(names: st.SearchStrategy[str]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "specversion": spec_versions,
        "id": envelope_ids,
        "source": odd_ids,
        "type": types,
        "data": data_objects(names) | wrong_types,
        "time": st.none() | instants,
        "datacontenttype": content_types,
        "subject": st.none() | envelope_ids,
        "correlationid": st.none() | envelope_ids,
    }


def mutated(draw: st.DrawFn, obj: Obj, odds: dict[str, st.SearchStrategy[Any]]) -> Obj:
    """`obj`, or with a change or two: a field dropped, of a wrong type, repeated, or an
    unknown one."""
    for _ in range(draw(sometimes(2)) + draw(sometimes(4))):
        key = draw(st.sampled_from(sorted(odds)))
        change = draw(st.sampled_from(["drop", "wrong", "odd", "repeat", "extra"]))
        if change == "drop":
            obj = obj.without(key)
        elif change == "wrong":
            obj = obj.with_(key, draw(wrong_types))
        elif change == "odd":
            obj = obj.with_(key, draw(odds[key]))
        else:
            obj = added(draw, obj, odds, repeat=change == "repeat")
    return obj


def added(draw: st.DrawFn, obj: Obj, odds: dict[str, st.SearchStrategy[Any]], *, repeat: bool) -> Obj:
    """`obj` with one more member: a key it has (the odd value before or after the other),
    an unknown one, or a lot of them (past 16 keys, a JSON object may be looked up by hash)."""
    at = draw(st.integers(0, len(obj.pairs)))
    if repeat:
        key = draw(st.sampled_from(sorted(odds)))
        return obj.plus(key, draw(odds[key] | wrong_types), at=at)
    if draw(sometimes(8)):
        return Obj(obj.pairs[:at] + tuple((f"k{i}", i) for i in range(draw(st.integers(12, 30)))) + obj.pairs[at:])
    return obj.plus(draw(keys), draw(extras), at=at)


@st.composite
def envelopes(draw: st.DrawFn, names: st.SearchStrategy[str], odd: bool = True) -> Obj:
    """A `work.scored` event: with `odd`, now and then a part of it odd."""
    envelope = Obj(
        (
            ("specversion", "1.0"),
            ("id", draw(envelope_ids if odd else valid_ids)),
            ("source", draw(mostly(names | valid_sources, odd_ids, odds=6) if odd else names | valid_sources)),
            ("type", "work.scored"),
            ("data", draw(data_objects(names, odd))),
        )
    )
    for name, values, valid in (
        ("time", st.none() | instants, st.none() | valid_instants),
        ("datacontenttype", content_types, st.just("application/json")),
        ("subject", st.none() | envelope_ids, st.none() | valid_ids),
        ("correlationid", st.none() | envelope_ids, st.none() | valid_ids),
        ("correlationsource", st.none() | valid_sources | odd_ids, st.none() | valid_sources),
    ):
        if draw(sometimes(3)):
            envelope = envelope.with_(name, draw(values if odd else valid))
    if draw(st.booleans()):
        envelope = Obj(tuple(draw(st.permutations(envelope.pairs))))
    return mutated(draw, envelope, envelope_odds(names)) if odd else envelope


def around(draw: st.DrawFn, text: bytes) -> bytes:
    """Now and then whitespace, a BOM or other bytes around the JSON, or a byte changed in it."""
    if draw(sometimes(6)):
        before = draw(st.sampled_from([b"", b" ", b"\n\t\r ", b"\xef\xbb\xbf", b"\x0c", b"\x00"]))
        after = draw(st.sampled_from([b"", b" ", b"\r\n", b"\x0b", b"\xc2\xa0", b"\x00", b"x", b",", b"{}"]))
        text = before + text + after
    if text and draw(sometimes(12)):
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + bytes([draw(st.integers(0, 255))]) + text[at + 1 :]
    return text


@st.composite
def runs(draw: st.DrawFn) -> st.SearchStrategy[str]:
    """The few ids and sources a run of records draws from, so that they share them: one
    valid as an id, others perhaps valid as a source only."""
    return st.sampled_from([draw(valid_ids), *draw(st.lists(either | valid_ids, max_size=2))])


@st.composite
def structured_values(draw: st.DrawFn, names: st.SearchStrategy[str]) -> bytes:
    if draw(sometimes(20)):  # not an object at all
        return dumps(draw(json_values | st.lists(st.just(DATA))), draw(st.booleans()))
    return around(draw, dumps(draw(envelopes(names)), ascii_only=draw(st.booleans())))


@st.composite
def structured_runs(draw: st.DrawFn) -> list[bytes]:
    names = draw(runs())
    return [draw(structured_values(names)) for _ in range(draw(st.integers(1, 3)))]


def header(value: Any) -> bytes | None:
    if value is None or isinstance(value, str):
        return None if value is None else value.encode("utf-8", "surrogatepass")
    return value.text if isinstance(value, Raw) else str(value).encode()


@st.composite
def binary_records(draw: st.DrawFn, names: st.SearchStrategy[str]) -> tuple[bytes, Headers]:
    """Events in binary mode: attributes as `ce_*` headers, `data` as the value."""
    envelope = draw(envelopes(names))
    headers: Headers = []
    for key, value in envelope.pairs:
        name = key.text.decode("latin-1") if isinstance(key, Raw) else key
        if name == "data":
            continue
        if name == "datacontenttype" and draw(st.booleans()):
            headers.append(("content-type", header(value)))
        else:
            headers.append(("ce_" + name, header(value)))
    headers += draw(
        st.sampled_from(
            [
                [],
                [],
                [],
                [("content-type", b"application/json")],
                [("content-type", b"application/cloudevents+json")],  # then structured after all
                [("ce_traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
                [("ce_data", b"{}")],
                [("ce_id", b"\xff")],
                [("ce_subject", None)],
                [("content-type", None)],
            ]
        )
    )
    headers = draw(st.permutations(headers))
    data = envelope.get("data")
    return around(draw, b"" if data is None else dumps(data, draw(st.booleans()))), headers


@st.composite
def binary_runs(draw: st.DrawFn) -> list[tuple[bytes, Headers]]:
    names = draw(runs())
    return [draw(binary_records(names)) for _ in range(draw(st.integers(1, 3)))]


def valid_work_scored(*, source: str = "mill", **changes: Any) -> bytes:
    envelope = {
        "specversion": "1.0",
        "id": "e-1",
        "source": source,
        "type": "work.scored",
        "time": "2018-11-30T23:59:00+08:00",
        "datacontenttype": "application/json",
        "data": {**DATA, **changes},
    }
    return orjson.dumps(envelope)


# --- the properties ---------------------------------------------------------------------------

# About 10 s in all; some 50 times as many examples found nothing more.
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = {"item_id": odd_ids, "worker_id": odd_ids, "post_id": odd_ids, "score": scores, "scored_at": instants}


@FUZZ
@given(structured_runs())
def test_structured_records_are_decided_alike(values: list[bytes]) -> None:
    agree([(value, None) for value in values])


@FUZZ
@given(binary_runs())
def test_binary_records_are_decided_alike(records: list[tuple[bytes, Headers]]) -> None:
    agree(records)


@FUZZ
@given(st.sampled_from(sorted(FIELDS)).flatmap(lambda name: st.tuples(st.just(name), FIELDS[name])), st.booleans())
def test_each_field_is_read_alike(field: tuple[str, Any], ascii_only: bool) -> None:
    name, value = field
    envelope = orjson.loads(valid_work_scored())
    envelope["data"] = Obj(tuple(envelope["data"].items())).with_(name, value)
    agree([(dumps(envelope, ascii_only), None)])


@st.composite
def with_unknown_and_repeated_keys(draw: st.DrawFn) -> bytes:
    """A valid event but for a member or two more, in it or in its `data`."""
    names = draw(runs())
    envelope = draw(envelopes(names, odd=False))
    for _ in range(draw(st.integers(1, 3))):
        repeat = draw(sometimes(3))
        data = envelope.get("data")  # the last `data`, perhaps no object
        if isinstance(data, Obj) and draw(st.booleans()):
            envelope = envelope.with_("data", added(draw, data, DATA_ODDS, repeat=repeat))
        else:
            envelope = added(draw, envelope, envelope_odds(names), repeat=repeat)
    return dumps(envelope, ascii_only=draw(st.booleans()))


@FUZZ
@given(with_unknown_and_repeated_keys())
def test_unknown_and_repeated_keys_are_read_alike(value: bytes) -> None:
    agree([(value, None)])


@st.composite
def valid_runs(draw: st.DrawFn) -> list[bytes]:
    """Valid records but for ids and sources, drawn from the few of a run."""
    names = draw(runs())
    return [
        valid_work_scored(source=draw(names), item_id=draw(valid_ids), worker_id=draw(names), post_id=draw(names))
        for _ in range(draw(st.integers(2, 5)))
    ]


@FUZZ
@given(valid_runs())
def test_ids_and_sources_are_checked_in_each_field_they_come_in(values: list[bytes]) -> None:
    agree([(value, None) for value in values])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structured_runs() | valid_runs() | with_unknown_and_repeated_keys().map(lambda value: [value]))
def test_what_the_fast_path_takes_the_reference_takes_and_reads_alike(values: list[bytes]) -> None:
    """The key property, on the fast path alone (no fallback to hide a difference)."""
    forget()
    for value in values:
        data = fast._accept(value)
        if data is not None:
            assert fields(reference(value)) == fields(data)


# --- examples found, and kept -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scored_at", "fast_path"),
    [
        ("2018-11-30T23:59:00.1234567+08:00", False),  # msgspec rounds to .123457, pydantic truncates
        ("2018-11-30T23:59:00.9999995Z", False),
        ("2018-11-30T23:59:59.9999999Z", False),  # rounded: the next minute
        ("2018-11-30T23:59:00.0000005+0800", False),
        ("2018-11-30T23:59:00.123456789z", False),
        ("2018-11-30T23:59:00.123456+08:00", True),
        ("2018-11-30T23:59:00.12345+0800", False),  # taken only with a zone of 1 or 6 characters
        ("2018-11-30T23:59:00.123456Z", True),
        ("2018-11-30T23:59:00.5Z", True),
    ],
)
def test_a_fraction_of_a_second_is_truncated_to_microseconds(scored_at: str, fast_path: bool) -> None:
    value = valid_work_scored(scored_at=scored_at)
    assert (fast._accept(value) is not None) is fast_path
    agree([(value, None)])


def test_a_source_seen_valid_is_no_valid_id() -> None:
    forget()
    with_source = orjson.loads(valid_work_scored())
    with_source["source"] = "hr/ft"
    first = orjson.dumps(with_source)
    with_source["data"]["worker_id"] = "hr/ft"
    second = orjson.dumps(with_source)
    assert fast._accept(first) is not None
    assert fast._accept(second) is None
    agree([(first, None), (second, None)])


@pytest.mark.parametrize(
    "extra",
    [
        b'"x":"\xff"',  # invalid UTF-8, skipped by msgspec
        b'"\xff":1',
        b'"x":"\xed\xa0\x80"',  # a UTF-8-encoded surrogate
        b'"x":' + b"[" * 201 + b"]" * 201,  # deeper than pydantic's JSON parser goes
        b'"x":' + b'{"a":' * 200 + b"1" + b"}" * 200,
        b'"x":' + b"9" * 4301,  # a number too long for pydantic's JSON parser
        b'"x":' + b"1" * 4301 + b"e-4300",
    ],
)
@pytest.mark.parametrize("where", ["envelope", "data"])
def test_what_pydantic_cannot_parse_in_an_unknown_field_is_not_taken(extra: bytes, where: str) -> None:
    value = valid_work_scored()
    value = value[:-1] + b"," + extra + b"}" if where == "envelope" else value[:-2] + b"," + extra + b"}}"
    assert fast._accept(value) is None
    agree([(value, None)])


def test_invalid_utf8_in_a_read_field_is_a_dead_letter_not_a_crash() -> None:
    value = valid_work_scored().replace(b'"e-1"', b'"e\xff"')
    with pytest.raises(DecodeError):
        decode_work_scored(value)
    agree([(value, None)])


@pytest.mark.parametrize(
    "value",
    [
        valid_work_scored(scored_at=NOW.replace(microsecond=0).isoformat(), score=87),
        valid_work_scored(scored_at=NOW.astimezone(EAST).isoformat()),  # microseconds and an offset
        valid_work_scored(scored_at=NOW.isoformat(timespec="milliseconds").replace("+00:00", "Z")),
        valid_work_scored()[:-1] + ',"subject":"轧钢一号线 · 第三班组"}'.encode(),  # UTF-8 as it is
        valid_work_scored()[:-1] + rb',"subject":"\u8f67\u94a2"}',  # or escaped
        valid_work_scored()[:-1] + b',"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
        valid_work_scored()[:-1] + b',"x":[[1,2],{"a":[3]}]}',
        valid_work_scored()[:-1] + b',"correlationid":"' + b"c" * 256 + b'","correlationsource":"' + b"s" * 512 + b'"}',
        valid_work_scored()[:-1] + b',"x":"' + b"p" * 3000 + b'"}',
        valid_work_scored()[:-1] + b',"x":' + b"[" * 198 + b"]" * 198 + b"}",
    ],
)
def test_usual_records_take_the_fast_path(value: bytes) -> None:
    forget()
    assert fast._accept(value) is not None
    agree([(value, None)])


def test_an_instant_over_a_day_ahead_is_a_dead_letter() -> None:
    ahead = (datetime.now(UTC) + timedelta(days=1, minutes=5)).isoformat()
    value = valid_work_scored(scored_at=ahead)
    assert fast._accept(value) is None
    agree([(value, None)])
