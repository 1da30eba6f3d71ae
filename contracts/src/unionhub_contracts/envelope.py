"""The CloudEvents 1.0 envelope (structured JSON mode on the wire; binary mode is read too)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"

DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """One message value: envelope attributes around a typed `data` payload.

    Extension attributes (`correlationid`, `correlationsource`, …) are allowed; unknown ones
    are ignored on read. `source` + `id` identify a message. `source` is a URI-reference,
    which is ASCII by RFC 3986 (other characters are percent-encoded).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")
    type: str = Field(min_length=1, max_length=128)
    time: AwareDatetime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    subject: str | None = Field(default=None, max_length=256)
    correlationid: str | None = Field(default=None, max_length=256)
    # On events: the `source` of the command answered, so two senders using one id tell
    # their answers apart.
    correlationsource: str | None = Field(default=None, max_length=512)
    data: DataT


def envelope_fields(
    *,
    event_id: str,
    source: str,
    event_type: str,
    time: datetime,
    correlation_id: str | None,
    correlation_source: str | None = None,
) -> dict[str, Any]:
    """The envelope attributes of an outgoing event, without `data`."""
    fields: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time.isoformat(),
        "datacontenttype": "application/json",
    }
    if correlation_id is not None:
        fields["correlationid"] = correlation_id
    if correlation_source is not None:
        fields["correlationsource"] = correlation_source
    return fields
