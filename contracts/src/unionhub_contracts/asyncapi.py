"""AsyncAPI 3.0 documents generated from the catalogue, so docs and code cannot drift.

A service's document has a channel per topic it reads (a receive operation) or publishes to (a
send operation) holding every message type the catalogue lists for that topic; a message it
reads may also come in CloudEvents binary mode, listed as a `_binary` twin. Each topic it reads
has its dead-letter topic as a channel with a send operation: what the service cannot use is
copied there unchanged, with headers saying why (unionhub_runtime.deadletters).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .catalogue import CONTRACT_VERSION, MESSAGES, MessageType, Topic, topic
from .codec import BINARY_PREFIX, DecodeErrorCode
from .envelope import CONTENT_TYPE, CloudEvent

Action = Literal["receive", "send"]
KAFKA = "0.5.0"  # the version of the AsyncAPI Kafka bindings used
SCHEMAS = "#/components/schemas/"
MODE: dict[Action, JsonSchemaMode] = {"receive": "validation", "send": "serialization"}
# `error.code` of a dead letter: the decoder's codes, and the runtime's for a record whose
# handler kept failing.
DEAD_LETTER_CODES = (*(code.value for code in DecodeErrorCode), "handler_error")
TRACEPARENT = {"type": "string", "description": "W3C trace context; the events a command causes continue its trace."}


def document(service: str, *, receives: list[str], sends: list[str]) -> dict[str, Any]:
    """The AsyncAPI document of `service`, which consumes `receives` (dead-lettering what it
    cannot use of them) and publishes `sends`."""
    uses: list[tuple[str, Action]] = [(name, "receive") for name in receives] + [(name, "send") for name in sends]
    refs, schemas = _data_schemas(uses)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, action in uses:
        item, channel = topic(name), _id(name)
        messages: dict[str, Any] = {}
        for spec in MESSAGES[name].values():
            data = refs[(spec.data, MODE[action])]
            messages[_id(spec.type)] = _structured(spec, data, action)
            if action == "receive":
                messages[_id(spec.type) + "_binary"] = _binary(spec, data)
        channels[channel] = {
            "address": name,
            "title": name,
            "description": f"{item.description} Its readers' dead letters: {item.dlq}.",
            "messages": messages,
            "bindings": {"kafka": {"partitions": item.partitions, "bindingVersion": KAFKA}},
        }
        operations[f"{action}_{channel}"] = _operation(action, channel, list(messages), _purpose(service, item, action))
        if action == "receive":
            operations[f"{action}_{channel}"]["bindings"] = _group(service, name)
            channels[_id(item.dlq)] = _dead_letters(item)
            operations[f"send_{_id(item.dlq)}"] = _operation(
                "send", _id(item.dlq), ["dead_letter"], f"What {service} cannot use of {name}, set aside."
            )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"{service} service",
            "version": f"{CONTRACT_VERSION}.0.0",
            "description": (
                f"What {service} reads and publishes on Apache Kafka (integration contract v{CONTRACT_VERSION}). "
                "Every value is a CloudEvents 1.0 event in structured JSON mode; what it reads may also come "
                "in binary mode (attributes in `ce_*` headers, `data` as the value: each `_binary` message). "
                "`source` + `id` identify a message: a redelivered one is applied once. A record it cannot use "
                "is copied unchanged to `<topic>.dlq`. Topic names are prefixed by `KAFKA_TOPIC_PREFIX` "
                "(empty by default)."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": {"CloudEvent": _envelope(), **schemas}},
    }


def _id(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


def _data_schemas(uses: list[tuple[str, Action]]) -> tuple[dict[tuple[Any, JsonSchemaMode], Any], dict[str, Any]]:
    """The `data` schema of each message type as a reference, and the components referred to:
    what the service reads as validated, what it publishes as serialised (one name per model
    unless the two differ)."""
    wanted = {(spec.data, MODE[action]) for name, action in uses for spec in MESSAGES[name].values()}
    refs, top = models_json_schema(sorted(wanted, key=repr), ref_template=SCHEMAS + "{model}")
    return dict(refs), top.get("$defs", {})


def _envelope() -> dict[str, Any]:
    """The attributes of every event (the model the decoder checks), `data` aside."""
    schema = CloudEvent[BaseModel].model_json_schema(mode="validation")
    schema.pop("$defs", None)
    del schema["properties"]["data"]
    schema["title"] = "CloudEvent"
    schema["description"] = "CloudEvents 1.0 attributes; extension attributes not listed are ignored."
    return schema


def _key(spec: MessageType, action: Action) -> dict[str, Any]:
    if spec.key is None:
        return {"type": "string", "description": "Any key; a record without one is accepted."}
    said = f"`data.{spec.key}`, UTF-8."
    return {
        "type": "string",
        "description": said + (" A record without a key is accepted." if action == "receive" else ""),
    }


def _structured(spec: MessageType, data: dict[str, Any], action: Action) -> dict[str, Any]:
    return {
        "name": spec.type,
        "title": spec.type,
        "summary": spec.summary,
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {"content-type": {"const": CONTENT_TYPE}, "traceparent": TRACEPARENT},
            **({"required": ["content-type"]} if action == "send" else {}),
        },
        "payload": {
            "allOf": [
                {"$ref": SCHEMAS + "CloudEvent"},
                {"type": "object", "properties": {"type": {"const": spec.type}, "data": data}},
            ]
        },
        "bindings": {"kafka": {"key": _key(spec, action), "bindingVersion": KAFKA}},
    }


def _binary(spec: MessageType, data: dict[str, Any]) -> dict[str, Any]:
    """`spec` in CloudEvents binary mode: the attributes as `ce_*` headers, `data` the value."""
    envelope = _envelope()
    headers: dict[str, Any] = {}
    for name, attribute in envelope["properties"].items():
        if name == "datacontenttype":  # carried by `content-type`
            continue
        string = next((s for s in attribute.get("anyOf", [attribute]) if s.get("type") != "null"), attribute)
        headers[BINARY_PREFIX + name] = {k: v for k, v in string.items() if k not in ("title", "default")}
    headers[BINARY_PREFIX + "type"] = {"const": spec.type}
    return {
        "name": spec.type,
        "title": f"{spec.type} (binary mode)",
        "summary": spec.summary,
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "required": [BINARY_PREFIX + name for name in envelope["required"] if name != "data"],
            "properties": {**headers, "content-type": {"const": "application/json"}, "traceparent": TRACEPARENT},
        },
        "payload": data,
        "bindings": {"kafka": {"key": _key(spec, "receive"), "bindingVersion": KAFKA}},
    }


def _dead_letters(item: Topic) -> dict[str, Any]:
    """The channel of `item`'s dead-letter topic."""
    number = {"type": "string", "pattern": "^[0-9]+$"}
    headers = {
        "type": "object",
        "required": ["error.code", "error.message", "original.topic", "original.partition", "original.offset"],
        "properties": {
            "error.code": {"type": "string", "description": "Why: " + ", ".join(DEAD_LETTER_CODES) + "."},
            "error.message": {"type": "string", "description": "What was wrong, in a sentence."},
            "error.group": {
                "type": "string",
                "description": "The consumer group that set it aside: whose inbox knows it, who replays it.",
            },
            "original.topic": {"type": "string", "description": f"`{item.name}`, with the topic prefix."},
            "original.partition": number,
            "original.offset": number,
            "original.size": {**number, "description": "The value's size in bytes, when cut."},
            "original.truncated": {"const": "true", "description": "The copy was too large for the topic: cut."},
        },
        "description": "The original record's own headers are kept (but `error.*`, `original.*`), unless cut.",
    }
    message = {
        "name": "dead-letter",
        "title": f"Dead letter of {item.name}",
        "summary": "A record the service could not decode, or whose handler kept failing.",
        "contentType": "application/octet-stream",
        "headers": headers,
        "payload": {"description": "The original record's value, unchanged (its first 64 KiB when truncated)."},
        "bindings": {"kafka": {"key": {"description": "The original record's key."}, "bindingVersion": KAFKA}},
    }
    return {
        "address": item.dlq,
        "title": item.dlq,
        "description": f"Records of {item.name} set aside for inspection and replay, by every service reading it.",
        "messages": {"dead_letter": message},
    }


def _purpose(service: str, item: Topic, action: Action) -> str:
    if action == "send":
        return f"{service} publishes through its outbox: at least once, in order per key."
    if item.name.endswith(".events"):
        return (
            f"{service} keeps its own view of these events; a type it does not know (a newer producer) "
            "is skipped and counted (unionhub_events_skipped_total), never dead-lettered or blocking what follows; "
            f"a record that is no event at all goes to {item.dlq}."
        )
    return (
        f"{service} applies each message once, whatever the redelivery; a command's answer (its events, "
        f"`command.rejected`, or `command.held` while it waits for a prerequisite) goes to the service's "
        f"events topic. What cannot be decoded goes to {item.dlq}."
    )


def _group(service: str, name: str) -> dict[str, Any]:
    group = {
        "type": "string",
        "description": "`<KAFKA_TOPIC_PREFIX><consumer group>.<topic>`; the consumer group is a setting, "
        "by default the service's name.",
        "examples": [f"{service}.{name}"],
    }
    return {"kafka": {"groupId": group, "bindingVersion": KAFKA}}


def _operation(action: Action, channel: str, messages: list[str], description: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "description": description,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages],
    }
