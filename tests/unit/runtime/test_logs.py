"""Log lines are JSON objects carrying the service, the correlation id and the trace id."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from unionhub_runtime.database import create_engine
from unionhub_runtime.logs import JsonFormatter, correlation_id


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("unionhub.test", logging.WARNING, __file__, 1, message, args, None)


def test_a_log_line_is_one_json_object_with_service_correlation_and_trace() -> None:
    span = NonRecordingSpan(
        SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    token = correlation_id.set("cmd-42")
    try:
        with use_span(span):
            line = JsonFormatter("membership").format(record('batch on %s failed: "%s"', "topic", 'quote " inside'))
    finally:
        correlation_id.reset(token)
    parsed = orjson.loads(line)
    assert parsed["service"] == "membership"
    assert parsed["level"] == "WARNING"
    assert parsed["message"] == 'batch on topic failed: "quote " inside"'
    assert parsed["correlation_id"] == "cmd-42"
    assert parsed["trace_id"] == f"{0xABC:032x}"
    assert parsed["span_id"] == f"{0xDEF:016x}"
    assert "\n" not in line


def test_outside_a_message_there_is_no_correlation_or_trace() -> None:
    parsed = orjson.loads(JsonFormatter("feedback").format(record("started")))
    assert "correlation_id" not in parsed and "trace_id" not in parsed


def test_an_exception_stays_inside_the_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter("evaluation").format(rec)
    assert "\n" not in line
    assert "ValueError: boom" in orjson.loads(line)["exception"]


async def test_a_database_error_names_no_value_of_the_statement(tmp_path: Path) -> None:
    # Its text goes into log lines and the DLQ's error.message header: a display name must not.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE people (name TEXT NOT NULL, age INTEGER NOT NULL)"))
        with pytest.raises(DBAPIError) as caught:
            async with engine.begin() as connection:
                await connection.execute(
                    text("INSERT INTO people VALUES (:name, :age)"), {"name": "Li Wei", "age": None}
                )
    finally:
        await engine.dispose()
    assert "Li Wei" not in str(caught.value) and "Li Wei" not in repr(caught.value)


def test_a_logged_error_keeps_its_frames_and_loses_what_its_text_repeats() -> None:
    class RowError(Exception):
        sqlstate = "23502"

    try:
        try:
            raise RowError('null value in column "n"\nDETAIL:  Failing row contains (Li Wei, null).')
        except RowError as inner:
            raise RuntimeError("the batch failed") from inner
    except RuntimeError as error:
        caught = error
    record = logging.LogRecord(
        "faststream",
        logging.ERROR,
        __file__,
        1,
        f"RuntimeError: {caught.__cause__}",
        None,
        (type(caught), caught, caught.__traceback__),
    )
    line = orjson.loads(JsonFormatter("test").format(record))
    assert "Li Wei" not in line["message"] and "Li Wei" not in line["exception"]
    assert "23502" in line["exception"] and "test_logs.py" in line["exception"]
