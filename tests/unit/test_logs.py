"""The log handler removes the API key and bearer tokens from every record; JSON lines carry trace ids."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from voxgate.observability.logs import REDACTED, JsonFormatter, RedactingFilter

SECRET = "sk-abc123secret"


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.DEBUG, __file__, 1, msg, args, None)


def test_secret_is_removed_from_formatted_arguments() -> None:
    rec = record("> Authorization: %s %s", "Bearer", SECRET)
    RedactingFilter([SECRET]).filter(rec)
    assert SECRET not in rec.getMessage() and REDACTED in rec.getMessage()


def test_any_bearer_token_is_removed_even_if_unknown() -> None:
    rec = record("header Authorization: bearer sk-other-key, next")
    RedactingFilter().filter(rec)
    assert rec.getMessage() == f"header Authorization: bearer {REDACTED}, next"


def test_secret_is_removed_from_tracebacks() -> None:
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", None, __import__("sys").exc_info())
    RedactingFilter([SECRET]).filter(rec)
    assert rec.exc_text is not None and SECRET not in rec.exc_text


def json_line(logger: logging.Logger, message: str, *args: object) -> dict[str, str]:
    """Log through a handler set up as ``logs.configure(json_lines=True)`` does; return the parsed line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter([SECRET]))
    logger.addHandler(handler)
    try:
        logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    parsed: dict[str, str] = json.loads(stream.getvalue())
    return parsed


def test_json_lines_carry_the_current_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    logger = logging.getLogger("voxgate.test.json")
    with tracer.start_as_current_span("request") as span:
        line = json_line(logger, "inside %s", "a span")
    context = span.get_span_context()
    assert line["message"] == "inside a span"
    assert (line["level"], line["logger"]) == ("WARNING", "voxgate.test.json")
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_json_lines_outside_a_span_have_no_ids() -> None:
    line = json_line(logging.getLogger("voxgate.test.json"), "no span here")
    assert "trace_id" not in line and "span_id" not in line


def test_json_lines_are_redacted_too() -> None:
    line = json_line(logging.getLogger("voxgate.test.json"), "Authorization: Bearer %s", SECRET)
    assert SECRET not in json.dumps(line)
    assert line["message"] == f"Authorization: Bearer {REDACTED}"
