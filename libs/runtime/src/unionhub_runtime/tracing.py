"""Trace context across services: W3C `traceparent` in Kafka headers, one trace per command.

FastStream's telemetry middleware gives a batch subscriber one span per batch, linked to
(not part of) the messages' traces. So each record also gets a span of its own whose parent
is the record's `traceparent`, and the events it causes carry that span's context through
the outbox: a command and every event it causes share one trace across services.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import ProxyTracerProvider, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("unionhub_runtime")


def trace_headers(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """The W3C trace headers of a Kafka record, as text."""
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        if name in (TRACEPARENT, "tracestate") and value:
            carrier[name] = value.decode("ascii", "replace")
    return carrier


_TRACEPARENT = re.compile(rb"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def traceparent_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The record's W3C trace context, or None when it has none or a malformed one (which
    W3C says to ignore: it is never copied into the database or onto events)."""
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            return value.decode("ascii") if _TRACEPARENT.fullmatch(value) else None
    return None


def recording() -> bool:
    """True when a tracer provider is installed (an exporter or a test's in-memory one)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


@contextmanager
def processing(
    service: str, topic: str, headers: Sequence[tuple[str, bytes]] | None, event_type: str
) -> Iterator[str | None]:
    """A span for handling one record, child of the record's trace; yields the context to
    give the events it causes. Without a tracer provider it only passes the context on."""
    carrier = trace_headers(headers)
    if not recording():
        yield carrier.get(TRACEPARENT)
        return
    parent = _PROPAGATOR.extract(carrier) if carrier else context.get_current()
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "cloudevents.event_type": event_type,
        "unionhub.service": service,
    }
    span_name = f"{topic} handle"
    with _TRACER.start_as_current_span(span_name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes):
        yield current_traceparent()


def configure_exporter(service: str) -> bool:
    """Exports spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; else nothing."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True
