"""AsyncAPI 3.0 documents generated from the catalogue, so docs and code cannot drift."""

from __future__ import annotations

from typing import Any

from .catalogue import CONTRACT_VERSION, MESSAGES, topic
from .envelope import CONTENT_TYPE


def _message(type_name: str, data_model: Any, key: str | None) -> dict[str, Any]:
    schema = data_model.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
    return {
        "name": type_name,
        "contentType": CONTENT_TYPE,
        "summary": f"CloudEvent `{type_name}`" + (f", Kafka key = data.{key}" if key else ""),
        "payload": {
            "type": "object",
            "required": ["specversion", "id", "source", "type", "data"],
            "properties": {
                "specversion": {"const": "1.0"},
                "id": {"type": "string", "description": "unique per message; redelivery applies once"},
                "source": {"type": "string"},
                "type": {"const": type_name},
                "time": {"type": "string", "format": "date-time"},
                "datacontenttype": {"const": "application/json"},
                "correlationid": {"type": "string"},
                "data": schema,
            },
        },
    }


def document(service: str, *, receives: list[str], sends: list[str]) -> dict[str, Any]:
    """The AsyncAPI document of `service`, which consumes `receives` and publishes `sends`."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for action, names in (("receive", receives), ("send", sends)):
        for name in names:
            channel_id = name.replace(".", "_").replace("-", "_")
            messages = {
                t.replace(".", "_").replace("-", "_"): _message(t, spec.data, spec.key)
                for t, spec in MESSAGES[name].items()
            }
            channels[channel_id] = {
                "address": name,
                "description": topic(name).description + f" Dead letters: {topic(name).dlq}.",
                "messages": messages,
            }
            operations[f"{action}_{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in messages],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"{service} service",
            "version": f"{CONTRACT_VERSION}.0.0",
            "description": "CloudEvents 1.0 in structured JSON mode over Apache Kafka.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
    }
