"""One trace per command across services: W3C trace context travels in Kafka headers,
through membership's outbox, into evaluation's handling of the event."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import evaluation.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from membership.settings import MembershipSettings
from tests.support import Collector, command, running
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

UNIONS = [
    {
        "union_id": "bj",
        "name": "Federation",
        "level": "federation",
        "parent_id": None,
        "district": None,
        "kind": None,
        "founded_on": "1949-01-01",
    },
    {
        "union_id": "ft",
        "name": "Fengtai",
        "level": "district",
        "parent_id": "bj",
        "district": "Fengtai",
        "kind": None,
        "founded_on": "1950-01-01",
    },
    {
        "union_id": "ft-001",
        "name": "Steel",
        "level": "grassroots",
        "parent_id": "ft",
        "district": "Fengtai",
        "kind": "independent",
        "founded_on": "2018-02-01",
    },
]


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    # The global provider can be set once per process; later tests then record spans too.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def send_traced(bootstrap: str, topic: str, key: str, value: bytes, name: str) -> int:
    """Produces `value` inside a root span, as a traced outside system would; returns the trace id."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        with trace.get_tracer("tests").start_as_current_span(name) as root:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            headers = [(k, v.encode()) for k, v in carrier.items()]
            await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
            return root.get_span_context().trace_id
    finally:
        await producer.stop()


def handled(spans: InMemorySpanExporter, service: str, trace_id: int) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.attributes and s.attributes.get("unionhub.service") == service and s.context.trace_id == trace_id
    ]


async def test_a_command_and_the_events_it_causes_share_one_trace_across_services(
    kafka: KafkaSettings, spans: InMemorySpanExporter, tmp_path
) -> None:
    commands = kafka.topic_prefix + "membership.commands"
    events = kafka.topic_prefix + "membership.events"
    membership_service = membership.bootstrap.build(
        MembershipSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ms.db'}", kafka=kafka, batch_timeout_ms=10)
    )
    evaluation_service = evaluation.bootstrap.build(
        EvaluationSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}", kafka=kafka, batch_timeout_ms=10)
    )
    async with (
        Collector(kafka.bootstrap_servers, [events]) as collected,
        running(membership_service, membership.bootstrap.MIGRATIONS),
        running(evaluation_service, evaluation.bootstrap.MIGRATIONS),
    ):
        traces = []
        for union in UNIONS:
            traces.append(
                await send_traced(
                    kafka.bootstrap_servers,
                    commands,
                    union["union_id"],
                    command("union.register", union),
                    f"register {union['union_id']}",
                )
            )
            await collected.wait_for(lambda n=len(traces): len(collected.events(events, "union.registered")) == n)
        trace_id = await send_traced(
            kafka.bootstrap_servers,
            commands,
            "m-1",
            command(
                "member.enroll",
                {"member_id": "m-1", "union_id": "ft-001", "joined_on": "2018-03-01", "display_name": "Wang Fang"},
            ),
            "enroll m-1",
        )
        await collected.wait_for(lambda: collected.events(events, "member.enrolled"), what="member.enrolled")
        await collected.wait_for(lambda: handled(spans, "evaluation", trace_id), what="evaluation's span")

    enrolled = next(c for c in collected.records if c.event["type"] == "member.enrolled")
    header_trace = int(enrolled.headers["traceparent"].decode().split("-")[1], 16)
    assert header_trace == trace_id

    (in_membership,) = handled(spans, "membership", trace_id)
    (in_evaluation,) = handled(spans, "evaluation", trace_id)
    # evaluation's handling is a child of membership's: the event carried its context.
    assert in_evaluation.parent is not None
    assert in_evaluation.parent.span_id == in_membership.context.span_id
    assert in_membership.attributes["cloudevents.event_type"] == "member.enroll"
    assert in_evaluation.attributes["cloudevents.event_type"] == "member.enrolled"
    # Each union registration is a trace of its own: traces do not bleed into each other.
    assert len({*traces, trace_id}) == 4
    # FastStream's middleware spans (one per batch) are exported alongside.
    assert any(s.name.endswith(" process") for s in spans.get_finished_spans())
