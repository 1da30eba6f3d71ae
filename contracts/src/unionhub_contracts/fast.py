"""A fast decoder for `evaluation.work-scores`, the one high-volume topic.

The pydantic models stay the source of the schemas; this decoder is a copy of
`CloudEvent[WorkScored]` in msgspec, several times faster, and it only ever *accepts*: any
value it does not take goes to `codec.decode`, which accepts it or says why not (the dead
letter's code and message come from there). So `decode_work_scored` accepts and rejects
exactly what `codec.decode` does, provided the copy accepts nothing the models reject and
reads what it accepts as they do, which `tests/contract/test_fast_decoder.py` checks with
hypothesis.

Where the two libraries read a value differently the copy is the stricter:

- Python's `$` also matches before a final newline, so the patterns are full matches; an id's
  "no `/`" rule (an `AfterValidator` in `common.Id`) is folded into its pattern. Ids and
  sources seen valid are remembered apart: a valid source ("hr/ft") is no valid id.
- msgspec does not look inside what it skips (unknown fields; `scored_at`, kept as JSON text)
  as closely as pydantic's JSON parser, which refuses the whole value for invalid UTF-8
  anywhere, nesting over 200 deep or a number of over 4300 characters (its big-integer
  limit). So the copy takes only UTF-8 values of at most 4300 bytes with at most 200 `{`
  and `[` (counted only where the value is long enough to nest that deep).
- msgspec rounds a fraction of a second to the microsecond, pydantic truncates it
  (`.1234567` is `.123457` and `.123456`): `scored_at` is taken with at most 6 digits of it.
  (`time` is checked, not kept: both take the same texts there.)
- For invalid UTF-8 in a string it reads, msgspec raises `UnicodeDecodeError`, not its own
  `DecodeError` (both are `ValueError`s).
"""

from __future__ import annotations

import re
import string
import time
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from .catalogue import WORK_SCORES
from .codec import FUTURE_MARGIN_SECONDS, DecodeError, Headers, as_structured, decode, is_binary

# Lengths here, patterns in `_accept` (msgspec calls Python's `re` per value; most ids and
# sources repeat, so their checks are remembered).
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class _WorkScored(msgspec.Struct, frozen=True):
    item_id: _Id
    worker_id: _Id
    post_id: _Id
    score: Annotated[float, msgspec.Meta(ge=0, le=100)]
    scored_at: msgspec.Raw  # the JSON text: read by `_accept`


class _Envelope(msgspec.Struct, frozen=True):
    specversion: Literal["1.0"]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    type: Literal["work.scored"]
    data: _WorkScored
    time: _Instant | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    subject: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    correlationid: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    correlationsource: Annotated[str, msgspec.Meta(max_length=512)] | None = None


WorkScoredData = tuple[str, str, str, float, datetime, float]
"""A work item as `decode_work_scored` gives it: `item_id`, `worker_id`, `post_id`, `score`,
`scored_at`, and `scored_at.timestamp()` (worked out by the fast path anyway; a plain tuple
costs a fraction of an object per item on the bulk path)."""


_decoder = msgspec.json.Decoder(_Envelope)
_instant = msgspec.json.Decoder(_Instant).decode
_text = msgspec.json.Decoder(str).decode
# An id is `[A-Za-z0-9][A-Za-z0-9._:@-]*`, checked without a regular expression's match object
# (the item id never repeats): stripping the allowed characters from both ends leaves nothing
# only when every character is allowed.
_ID_FIRST = frozenset(string.ascii_letters + string.digits)
_ID_CHARACTERS = string.ascii_letters + string.digits + "._:@-"
_SOURCE = re.compile(r"[\x21-\x7e]+").fullmatch
_ids: set[str] = set()  # worker and post ids seen valid (bounded: see _remember)
_sources: set[str] = set()  # sources seen valid
_REMEMBERED = 100_000
_MAX_BYTES = 4_300  # pydantic's JSON parser refuses a number of more characters
_MAX_DEPTH = 200  # ... and nesting deeper than this (201 for arrays)
_SHALLOW = 2 * _MAX_DEPTH  # a value this short cannot nest deeper
_SHALLOW_OBJECTS = 5 * _MAX_DEPTH  # ... nor one without arrays this short (`{"":` and `}` a level)
_SHORT_INSTANT = 29  # an instant's JSON text this long (quotes, escapes) has at most 6 digits of fraction


def _accept(value: bytes) -> WorkScoredData | None:
    """The work item of a structured value if the fast path takes it, or None: then
    `codec.decode` decides. Beyond the struct: the limits above, the patterns (most ids and
    sources repeat, so their checks are remembered) and no instant more than a day ahead
    (`codec.implausible`; the score's range already excludes non-finite numbers)."""
    if not (len(value) <= _SHALLOW and value.isascii()) and not _parseable(value):
        return None
    try:
        event = _decoder.decode(value)
        data = event.data
        raw = data.scored_at
        # 19 characters, a fraction of a second, a zone of 1 ("Z"), 5 ("+0800") or 6
        # ("+08:00"): this short, or at most 32 long with a 6-character zone, an instant
        # has at most 6 digits of fraction.
        if len(raw) > _SHORT_INSTANT:
            text = _text(raw)
            if len(text) > 32 or text[-6:-5] not in ("+", "-"):
                return None
        scored_at = _instant(raw)
    except ValueError:  # msgspec's errors, UnicodeDecodeError among them
        return None
    item_id, worker_id, post_id = data.item_id, data.worker_id, data.post_id
    if not (worker_id in _ids and post_id in _ids and event.source in _sources):
        if not (_is_id(worker_id) and _is_id(post_id) and _SOURCE(event.source)):
            return None
        _remember(_ids, worker_id, post_id)
        _remember(_sources, event.source)
    timestamp = scored_at.timestamp()
    if not _is_id(item_id) or timestamp > time.time() + FUTURE_MARGIN_SECONDS:
        return None
    return (item_id, worker_id, post_id, data.score, scored_at, timestamp)


def _is_id(text: str) -> bool:
    return not text.strip(_ID_CHARACTERS) and text[0] in _ID_FIRST  # never empty: `_Id`'s min_length


def _parseable(value: bytes) -> bool:
    """Whether pydantic's JSON parser reads all of `value`, as far as msgspec may not look:
    UTF-8, no number too long, not too deep (counting is slow: a value without arrays, too
    short to nest objects that deep, is not counted)."""
    size = len(value)
    if size > _MAX_BYTES:
        return False
    if (
        size > _SHALLOW
        and (size >= _SHALLOW_OBJECTS or value.find(b"[") >= 0)
        and value.count(b"{") + value.count(b"[") > _MAX_DEPTH
    ):
        return False
    if value.isascii():
        return True
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _remember(seen: set[str], *values: str) -> None:
    if len(seen) >= _REMEMBERED:
        seen.clear()
    seen.update(values)


def decode_work_scored(value: bytes | None, headers: Headers | None = None) -> WorkScoredData:
    """The work item in a record of `evaluation.work-scores`, in either mode; raises
    `DecodeError` as `codec.decode` does, for the same values."""
    if value is not None and len(value) <= _MAX_BYTES:
        try:
            structured = as_structured(value, headers) if headers and is_binary(headers) else value
        except DecodeError:
            pass
        else:
            if (data := _accept(structured)) is not None:
                return data
    data = decode(WORK_SCORES.name, value, headers).data
    return (data.item_id, data.worker_id, data.post_id, data.score, data.scored_at, data.scored_at.timestamp())
