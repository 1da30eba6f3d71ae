"""Decoding and encoding of Kafka records as CloudEvents.

Read: structured JSON mode (the whole event in the value) and binary mode (attributes in
`ce_*` headers, `data` as the value). Written: structured mode only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum, StrEnum
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError, create_model

from .catalogue import MESSAGES
from .common import MAX_MESSAGE_BYTES
from .envelope import CloudEvent, envelope_fields


class DecodeErrorCode(StrEnum):
    """The `error.code` header of a dead letter."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_CLOUDEVENT = "not_cloudevent"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_DATA = "invalid_data"


class DecodeError(Exception):
    """A message value that cannot be understood; it belongs in the dead-letter topic."""

    def __init__(
        self,
        code: DecodeErrorCode,
        message: str,
        event_id: str | None,
        event_type: str | None,
        event_source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.event_id = event_id
        self.event_type = event_type
        self.event_source = event_source


@cache
def _adapter(topic: str) -> TypeAdapter[Any]:
    """One discriminated union per topic: the whole value is validated in a single pass."""
    variants = []
    for name, spec in MESSAGES[topic].items():
        model_name = "Event_" + name.replace(".", "_").replace("-", "_")
        variants.append(
            create_model(
                model_name,
                __base__=CloudEvent[spec.data],  # type: ignore[name-defined]
                type=(Literal[name], ...),
            )
        )
    union = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union)


def _describe(errors: list[Any]) -> str:
    """A readable summary that never repeats the input (it may hold personal data) and stays
    short: a location holds the input's dict keys, which may be of any length."""
    parts = []
    for error in errors[:5]:
        loc = ".".join(_shortened(str(p)) for p in error["loc"][1:]) or "value"
        parts.append(f"{loc}: {error['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return ("; ".join(parts) + more)[:MAX_MESSAGE]


MAX_PART = 64  # characters of one part of an error's location
MAX_MESSAGE = 1000  # characters of a decode error's message (a rejection's reason, a DLQ header)


def _shortened(part: str) -> str:
    return part if len(part) <= MAX_PART else part[:MAX_PART] + "…"


def _head(value: bytes) -> tuple[str | None, str | None, str | None]:
    """The `id`, `type` and `source` of a value that failed validation, where readable."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(parsed, dict):
        return None, None, None
    # Only values the envelope itself allows: an answer is keyed and stored by them.
    found = [parsed.get(name) if _HEAD_FIELDS[name](parsed.get(name)) else None for name in ("id", "type", "source")]
    return tuple(found)  # type: ignore[return-value]


def _envelope_allows(name: str) -> Callable[[Any], bool]:
    adapter: TypeAdapter[str] = TypeAdapter(Annotated[str, CloudEvent.model_fields[name]])

    def allows(value: Any) -> bool:
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError:
            return False
        return True

    return allows


_HEAD_FIELDS = {name: _envelope_allows(name) for name in ("id", "type", "source")}


def _classify(exc: ValidationError) -> DecodeErrorCode:
    first = exc.errors(include_url=False, include_input=False)[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        return DecodeErrorCode.NOT_JSON
    if kind == "union_tag_invalid":
        return DecodeErrorCode.UNKNOWN_TYPE
    if len(loc) >= 2 and loc[1] == "data":
        return DecodeErrorCode.INVALID_DATA
    return DecodeErrorCode.NOT_CLOUDEVENT


Headers = Sequence[tuple[str, bytes]]
BINARY_PREFIX = "ce_"  # CloudEvents Kafka protocol binding, binary content mode


def is_binary(headers: Headers | None) -> bool:
    """Binary mode: a `ce_specversion` header, and no structured `content-type`."""
    binary = False
    for name, value in headers or ():
        if name == "ce_specversion":
            binary = True
        elif name == "content-type" and value is not None and value.startswith(b"application/cloudevents"):
            return False
    return binary


def as_structured(value: bytes, headers: Headers) -> bytes:
    """The structured form of a binary-mode record: its `ce_*` attributes around `data`."""
    attributes: dict[str, str] = {}
    try:
        for name, raw in headers:
            if name.startswith(BINARY_PREFIX) and name != "ce_data":
                attributes[name[len(BINARY_PREFIX) :]] = raw.decode("utf-8")
            elif name == "content-type":
                attributes["datacontenttype"] = raw.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):  # AttributeError: a header without a value
        raise DecodeError(DecodeErrorCode.NOT_CLOUDEVENT, "a ce_* header is empty or not UTF-8", None, None) from None
    try:
        orjson.loads(value)  # exactly one JSON value, so it can be spliced in as `data`
    except orjson.JSONDecodeError:
        head = (attributes.get(name) or None for name in ("id", "type", "source"))
        raise DecodeError(DecodeErrorCode.NOT_JSON, "data is not JSON", *head) from None
    return orjson.dumps(attributes)[:-1] + b',"data":' + value + b"}"


def decode(topic: str, value: bytes | None, headers: Headers | None = None) -> CloudEvent[Any]:
    """The validated event in a record of `topic`, in either mode; raises `DecodeError`."""
    if value is None:
        raise DecodeError(DecodeErrorCode.NOT_JSON, "empty value", None, None)
    if len(value) > MAX_MESSAGE_BYTES:
        raise DecodeError(DecodeErrorCode.TOO_LARGE, f"value of {len(value)} bytes is over 1 MiB", None, None)
    if headers and is_binary(headers):
        value = as_structured(value, headers)
    try:
        event: CloudEvent[Any] = _adapter(topic).validate_json(value)
    except ValidationError as exc:
        code = _classify(exc)
        event_id, event_type, source = _head(value) if code is not DecodeErrorCode.NOT_JSON else (None, None, None)
        errors = exc.errors(include_url=False, include_input=False)
        if code is DecodeErrorCode.UNKNOWN_TYPE:
            message = f"type {event_type!r} is not a message of topic {topic}"
        else:
            message = _describe(errors)
        raise DecodeError(code, message, event_id, event_type, source) from None
    if problem := implausible(event.data, instants_happened=not topic.endswith(".events")):
        raise DecodeError(DecodeErrorCode.INVALID_DATA, problem, event.id, event.type, event.source)
    return event


INT_RANGE = (-(2**31), 2**31 - 1)  # the databases' INTEGER: what every stored count and year fits
FUTURE_MARGIN_SECONDS = 86_400  # clock skew a sender may have


def implausible(value: Any, where: str = "data", *, instants_happened: bool = True) -> str | None:
    """Why a valid value is still one no service can keep, or None: a float that is not a
    number (JSON readers take NaN and Infinity), an integer past the databases' INTEGER, and
    where `instants_happened` (commands and work scores: every instant says when something
    happened; an event may name a time to come, such as a due date) an instant more than a
    day ahead. The published schemas stay as they are; this is the decoder's own check."""
    if isinstance(value, BaseModel):
        for name, kind in _checked_fields(type(value)):
            if kind == "instant" and not instants_happened:
                continue
            item = getattr(value, name)
            if item is not None and (problem := _KINDS[kind](item, f"{where}.{name}")):
                return problem
        return None
    return _any(value, where)


def _finite(value: float, where: str) -> str | None:
    return None if math.isfinite(value) else f"{where}: {value} is not a finite number"


def _in_range(value: int, where: str) -> str | None:
    return None if INT_RANGE[0] <= value <= INT_RANGE[1] else f"{where}: integer out of range"


def _not_ahead(value: datetime, where: str) -> str | None:
    if value.timestamp() > time.time() + FUTURE_MARGIN_SECONDS:
        return f"{where}: an instant more than a day in the future"
    return None


def _any(value: Any, where: str) -> str | None:
    if isinstance(value, BaseModel):
        return implausible(value, where)
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return _finite(value, where)
    if isinstance(value, int):
        return _in_range(value, where)
    if isinstance(value, datetime):
        return _not_ahead(value, where)
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := _any(v, f"{where}.{_shortened(str(k))}"))), None)
    if isinstance(value, (list, tuple)):
        return next((p for v in value if (p := _any(v, where))), None)
    return None


_KINDS: dict[str, Callable[[Any, str], str | None]] = {
    "float": _finite,
    "int": _in_range,
    "instant": _not_ahead,
    "any": _any,
}


@cache
def _checked_fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """The fields of `model` worth checking and how (strings, dates and enums are not):
    worked out once per model, since the bulk path decodes tens of thousands a second."""
    return tuple(
        (name, kind) for name, field in model.model_fields.items() if (kind := _kind(field.annotation)) is not None
    )


def _kind(annotation: Any) -> str | None:
    kinds = {
        _kind_of(a)
        for a in (get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,))
        if a is not type(None)
    }
    kinds.discard(None)
    return kinds.pop() if len(kinds) == 1 else ("any" if kinds else None)


def _kind_of(annotation: Any) -> str | None:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if annotation is bool or annotation is str or annotation is date:
        return None
    if annotation is float:
        return "float"
    if annotation is int:
        return "int"
    if annotation is datetime or annotation is AwareDatetime:
        return "instant"
    if isinstance(annotation, type) and issubclass(annotation, (str, Enum)):
        return None
    if get_origin(annotation) in (list, tuple, dict) and all(
        _kind(item) is None for item in get_args(annotation) if item is not Ellipsis
    ):
        return None  # ids, names: nothing to check inside
    return "any"  # models, containers, unions of several kinds


@dataclass(frozen=True)
class OutgoingEvent:
    """An event ready for Kafka: key, value and the id it was published under."""

    id: str
    type: str
    key: str | None
    value: bytes


def encode(
    *,
    event_id: str,
    event_type: str,
    data: BaseModel,
    source: str,
    time: datetime,
    correlation_id: str | None,
    key: str | None,
    correlation_source: str | None = None,
) -> OutgoingEvent:
    """Serialise one event in structured mode."""
    body = envelope_fields(
        event_id=event_id,
        source=source,
        event_type=event_type,
        time=time,
        correlation_id=correlation_id,
        correlation_source=correlation_source,
    )
    body["data"] = data.model_dump(mode="json")
    return OutgoingEvent(id=event_id, type=event_type, key=key, value=orjson.dumps(body))
