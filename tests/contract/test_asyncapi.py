"""Each service's `/asyncapi` document is valid AsyncAPI 3.0, by the specification's own JSON
Schema (deploy/asyncapi/fetch.sh), and lists everything the service reads and sends: every
message of the catalogue on each topic, in both CloudEvents modes where it reads, and the
dead-letter topic of each topic it reads, with the headers the runtime writes."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jsonschema
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from referencing import Registry
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from evaluation import bootstrap as evaluation
from evaluation.settings import EvaluationSettings
from feedback import bootstrap as feedback
from feedback.settings import FeedbackSettings
from membership import bootstrap as membership
from membership.settings import MembershipSettings
from unionhub_contracts import MESSAGES, decode, encode, topic
from unionhub_runtime.deadletters import DeadLetters
from unionhub_runtime.service import Service

from .examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "deploy" / "asyncapi" / ".cache" / "3.0.0.json"
IN_MEMORY = "sqlite+aiosqlite:///:memory:"  # build() makes an engine, never connects it
SERVICES: dict[str, tuple[ModuleType, Callable[..., Any]]] = {
    "membership": (membership, MembershipSettings),
    "evaluation": (evaluation, EvaluationSettings),
    "feedback": (feedback, FeedbackSettings),
}


def _offline(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # every $ref of the bundled schema is inside it


@cache
def specification() -> jsonschema.Draft7Validator:
    """The validator of the pinned AsyncAPI 3.0 schema; a test fails (never skips) without it."""
    if not SCHEMA.is_file():
        pytest.fail(
            f"the AsyncAPI 3.0 JSON Schema is missing ({SCHEMA.relative_to(ROOT)}): "
            "run `make asyncapi-schema` (deploy/asyncapi/fetch.sh, needs npm once)",
            pytrace=False,
        )
    schema = json.loads(SCHEMA.read_text())
    registry: Registry[Any] = Registry(retrieve=_offline).with_resource(schema["$id"], DRAFT7.create_resource(schema))
    return jsonschema.Draft7Validator(schema, registry=registry)


@cache
def service(name: str) -> Service:
    """The service as its composition root builds it (no broker, no database touched)."""
    module, settings = SERVICES[name]
    built: Service = module.build(settings(database_url=IN_MEMORY))
    return built


def document(name: str) -> dict[str, Any]:
    return copy.deepcopy(service(name).definition.asyncapi)  # what GET /asyncapi answers


def operations(doc: dict[str, Any], action: str) -> dict[str, dict[str, Any]]:
    """`{topic: the operation}` of the operations doing `action`."""
    return {
        resolve(doc, operation["channel"]["$ref"])["address"]: operation
        for operation in doc["operations"].values()
        if operation["action"] == action
    }


def catalogued(doc: dict[str, Any], action: str) -> dict[str, str]:
    """`{topic: channel id}` of the catalogue's topics the service reads or publishes to."""
    return {
        address: operation["channel"]["$ref"].removeprefix("#/channels/")
        for address, operation in operations(doc, action).items()
        if address in MESSAGES
    }


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolves(doc: dict[str, Any], ref: str) -> bool:
    try:
        resolve(doc, ref)
    except (KeyError, AssertionError):
        return False
    return True


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def check(doc: dict[str, Any], schema_ref: str, instance: Any) -> None:
    """Validates `instance` against the schema at `schema_ref` inside `doc`."""
    registry: Registry[Any] = Registry(retrieve=_offline).with_resource("urn:doc", DRAFT7.create_resource(doc))
    jsonschema.Draft7Validator({"$ref": "urn:doc" + schema_ref}, registry=registry).validate(instance)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_document_is_valid_asyncapi_3(name: str) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in specification().iter_errors(document(name))
    ]
    assert errors == []


def _publish(doc: dict[str, Any]) -> None:
    next(iter(doc["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word


def _numbered_address(doc: dict[str, Any]) -> None:
    next(iter(doc["channels"].values()))["address"] = 6


def _no_title(doc: dict[str, Any]) -> None:
    del doc["info"]["title"]


def _bad_payload_schema(doc: dict[str, Any]) -> None:
    doc["components"]["schemas"]["CloudEvent"]["type"] = "objectx"  # deep in the schema's own $refs


def _operation_without_channel(doc: dict[str, Any]) -> None:
    del next(iter(doc["operations"].values()))["channel"]


@pytest.mark.parametrize(
    "breaks", [_publish, _numbered_address, _no_title, _bad_payload_schema, _operation_without_channel]
)
def test_the_pinned_schema_rejects_a_document_the_specification_forbids(breaks: Callable[..., None]) -> None:
    doc = document("membership")
    breaks(doc)
    assert not specification().is_valid(doc)


@pytest.mark.parametrize("name", SERVICES)
def test_the_document_lists_what_the_service_subscribes_to_and_publishes(name: str) -> None:
    definition, doc = service(name).definition, document(name)
    consumed = {s.topic for s in definition.subscriptions}
    assert set(operations(doc, "receive")) == consumed
    assert set(operations(doc, "send")) == {definition.events_topic} | {topic(t).dlq for t in consumed}
    assert {ref for ref in refs(doc) if not _resolves(doc, ref)} == set()


@pytest.mark.parametrize("name", SERVICES)
def test_every_catalogued_message_is_listed_in_each_mode_the_service_accepts(name: str) -> None:
    doc = document(name)
    for action, modes in (("receive", {"structured", "binary"}), ("send", {"structured"})):
        for address, channel_id in catalogued(doc, action).items():
            messages = doc["channels"][channel_id]["messages"]
            listed = {
                (m["name"], "binary" if m["title"].endswith("(binary mode)") else "structured")
                for m in messages.values()
            }
            assert listed == {(t, mode) for t in MESSAGES[address] for mode in modes}, address
            operation = operations(doc, action)[address]
            assert [m["$ref"] for m in operation["messages"]] == [
                f"#/channels/{channel_id}/messages/{m}" for m in messages
            ]


@pytest.mark.parametrize("name", SERVICES)
def test_rejections_and_holds_are_published_on_the_service_events_topic(name: str) -> None:
    doc = document(name)
    events = doc["channels"][catalogued(doc, "send")[service(name).definition.events_topic]]
    for type_, field in (("command.rejected", "code"), ("command.held", "waiting_for")):
        message = events["messages"][type_.replace(".", "_")]
        data = resolve(doc, message["payload"]["allOf"][1]["properties"]["data"]["$ref"])
        assert message["name"] == type_ and field in data["required"]


def _example(address: str, type_: str) -> dict[str, Any]:
    """The example of `type_` as the services publish it, once read back by the decoder."""
    value = {"specversion": "1.0", "id": "c-1", "source": "hr", "type": type_, "data": EXAMPLES[address][type_]}
    outgoing = encode(
        event_id="e-1",
        event_type=type_,
        data=decode(address, json.dumps(value).encode()).data,
        source="svc",
        time=datetime(2018, 3, 1, tzinfo=UTC),
        correlation_id="c-1",
        correlation_source="hr",
        key=None,
    )
    body: dict[str, Any] = json.loads(outgoing.value)
    return body


@pytest.mark.parametrize("name", SERVICES)
def test_real_messages_fit_the_documented_schemas_in_both_modes(name: str) -> None:
    doc = document(name)
    for action in ("receive", "send"):
        for address, channel_id in catalogued(doc, action).items():
            for type_ in MESSAGES[address]:
                message = f"#/channels/{channel_id}/messages/{type_.replace('.', '_').replace('-', '_')}"
                body = _example(address, type_)
                check(doc, message + "/payload", body)
                check(doc, message + "/headers", {"content-type": "application/cloudevents+json"})
                with pytest.raises(jsonschema.ValidationError):
                    check(doc, message + "/payload", {**body, "type": "member.unknown"})
                if action == "receive":  # binary mode: attributes as headers, `data` the value
                    headers = {f"ce_{k}": v for k, v in body.items() if k not in ("data", "datacontenttype")}
                    check(doc, message + "_binary/headers", {**headers, "content-type": "application/json"})
                    check(doc, message + "_binary/payload", body["data"])
                    with pytest.raises(jsonschema.ValidationError):
                        check(doc, message + "_binary/headers", {**headers, "ce_type": "member.unknown"})


class FakeProducer:
    """Keeps what it is sent; refuses a record over `limit` bytes as the broker would."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.client = SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=lambda _topic: {0}))

    async def send(self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        if len(value or b"") > self.limit:
            raise MessageSizeTooLargeError()
        self.sent.append((topic, {k: v.decode() for k, v in headers}))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.mark.parametrize("size", [10, 200_000])
async def test_dead_letters_carry_the_documented_headers(size: int) -> None:
    doc = document("evaluation")
    producer = FakeProducer(limit=100_000)
    value = b"x" * size
    record = ConsumerRecord("membership.events", 3, 42, 0, 0, b"m-1", value, None, 3, size, [("traceparent", b"00-ab")])
    await DeadLetters(lambda: producer).send(record, "unknown_type", "type 'member.renamed' is unknown")
    [(dlq, headers)] = producer.sent
    assert dlq == "membership.events.dlq" and operations(doc, "send")[dlq]
    check(doc, "#/channels/membership_events_dlq/messages/dead_letter/headers", headers)
    documented = doc["channels"]["membership_events_dlq"]["messages"]["dead_letter"]["headers"]
    assert set(headers) <= set(documented["properties"]) | {"traceparent"}  # the original's own are kept
    assert ("original.truncated" in headers) == (size > producer.limit)
