"""Structured logs: one JSON object per line with service, correlation id and trace id.

Log lines name ids, types, topics and codes, never a member's personal data: handlers log
what happened to which message, not the message's content.
"""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime

import orjson
from opentelemetry import trace

# Set by the pipeline around each message's handling; log lines written meanwhile carry it.
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def describe_error(exc: BaseException) -> str:
    """An error as log lines and DLQ headers may carry it: its type, its SQLSTATE where it has
    one, and the first line of its text. Not the rest: PostgreSQL puts the row's values in a
    DETAIL ("Failing row contains (Li Wei, …)") and SQLAlchemy appends the statement."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None)
    first = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}{f' [SQLSTATE {state}]' if isinstance(state, str) else ''}: {first}"[:1000]


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (correlation := correlation_id.get()) is not None:
            line["correlation_id"] = correlation
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(service: str, level: str) -> None:
    """JSON lines on stderr for the whole process, uvicorn's loggers included."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
