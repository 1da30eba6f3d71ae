"""The CloudEvents 1.0 envelope, structured JSON mode."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"

DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """One message value: envelope attributes around a typed `data` payload.

    Extension attributes (`correlationid`, `traceparent`, …) are allowed; unknown ones are
    ignored on read.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=512)
    type: str = Field(min_length=1, max_length=128)
    time: AwareDatetime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    subject: str | None = Field(default=None, max_length=256)
    correlationid: str | None = Field(default=None, max_length=256)
    data: DataT


class EnvelopeHead(BaseModel):
    """The attributes read before `data` is understood, to route or report a message."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: str | None = None
    correlationid: str | None = None


def envelope_fields(
    *,
    event_id: str,
    source: str,
    event_type: str,
    time: datetime,
    correlation_id: str | None,
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
    return fields
