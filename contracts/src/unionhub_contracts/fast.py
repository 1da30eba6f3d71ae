"""A fast decoder for `evaluation.work-scores`, the one high-volume topic.

The pydantic models stay the source of the schemas; this decoder is a copy of
`CloudEvent[WorkScored]` in msgspec, several times faster, and it only ever *accepts*: any
value it does not take goes to `codec.decode`, which accepts it or says why not (the dead
letter's code and message come from there). So `decode_work_scored` accepts and rejects
exactly what `codec.decode` does, provided the copy accepts nothing the models reject, which
`tests/contract/test_fast_decoder.py` checks with hypothesis.

Where the two libraries read a constraint differently the copy is the stricter: Python's
`$` also matches before a final newline, so the patterns end in `\\Z`; an id's "no `/`" rule
(an `AfterValidator` in `common.Id`) is folded into its pattern.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Literal, Protocol

import msgspec

from .catalogue import WORK_SCORES
from .codec import FUTURE_MARGIN_SECONDS, DecodeError, Headers, as_structured, decode, is_binary
from .common import MAX_MESSAGE_BYTES

# Lengths here, patterns in `_plausible` (msgspec calls Python's `re` per value; most ids and
# sources repeat, so their checks are remembered).
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class _WorkScored(msgspec.Struct, frozen=True):
    item_id: _Id
    worker_id: _Id
    post_id: _Id
    score: Annotated[float, msgspec.Meta(ge=0, le=100)]
    scored_at: _Instant


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


class WorkScoredData(Protocol):
    """What both decoders give for one work item (`WorkScored` or its msgspec copy)."""

    @property
    def item_id(self) -> str: ...
    @property
    def worker_id(self) -> str: ...
    @property
    def post_id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def scored_at(self) -> datetime: ...


_decoder = msgspec.json.Decoder(_Envelope)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*").fullmatch
_SOURCE = re.compile(r"[\x21-\x7e]+").fullmatch
_valid: set[str] = set()  # worker and post ids and sources seen valid (bounded: see _remember)
_REMEMBERED = 100_000


def _plausible(event: _Envelope) -> bool:
    """The rules the struct does not check: patterns, and no instant more than a day ahead
    (`codec.implausible`; the score's range already excludes non-finite numbers)."""
    data = event.data
    if not (data.worker_id in _valid and data.post_id in _valid and event.source in _valid):
        if not (_ID(data.worker_id) and _ID(data.post_id) and _SOURCE(event.source)):
            return False
        _remember(data.worker_id, data.post_id, event.source)
    return _ID(data.item_id) is not None and data.scored_at.timestamp() <= time.time() + FUTURE_MARGIN_SECONDS


def _remember(*values: str) -> None:
    if len(_valid) >= _REMEMBERED:
        _valid.clear()
    _valid.update(values)


def decode_work_scored(value: bytes | None, headers: Headers | None = None) -> WorkScoredData:
    """The work item in a record of `evaluation.work-scores`, in either mode; raises
    `DecodeError` as `codec.decode` does, for the same values."""
    if value is not None and len(value) <= MAX_MESSAGE_BYTES:
        try:
            structured = as_structured(value, headers) if headers and is_binary(headers) else value
            event = _decoder.decode(structured)
        except (msgspec.DecodeError, DecodeError):
            pass
        else:
            if _plausible(event):
                return event.data
    slow: WorkScoredData = decode(WORK_SCORES.name, value, headers).data
    return slow
