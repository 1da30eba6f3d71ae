"""Structured logs: one JSON object per line with service, correlation id and trace id.

Log lines name ids, types, topics and codes, never a member's personal data: handlers log
what happened to which message, not the message's content.
"""

from __future__ import annotations

import contextvars
import logging
import traceback
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


def described_traceback(error: BaseException) -> str:
    """Where an error was raised and what it and its causes were, each as `describe_error`
    gives it: the frames and types a reader needs, never the values an error text repeats."""
    described = []
    for current in _chain(error):
        frames = traceback.extract_tb(current.__traceback__)[-8:]
        described.append(
            "\n".join([describe_error(current), *(f"  {f.filename}:{f.lineno} in {f.name}" for f in frames)])
        )
    return "\ncaused by ".join(described)


def _chain(error: BaseException | None, limit: int = 5) -> list[BaseException]:
    """`error` and what caused it, outermost first."""
    chain: list[BaseException] = []
    while error is not None and error not in chain and len(chain) < limit:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


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
        error = record.exc_info[1] if record.exc_info else None
        for cause in _chain(error):
            # A library's message may embed an error's text (FastStream's does): its DETAIL too.
            if "\n" in (text := str(cause)):
                line["message"] = str(line["message"]).replace(text, describe_error(cause))
        if (correlation := correlation_id.get()) is not None:
            line["correlation_id"] = correlation
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if error is not None:
            line["exception"] = described_traceback(error)
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
