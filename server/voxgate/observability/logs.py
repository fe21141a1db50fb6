"""Logging set-up that cannot print the API key.

Libraries log what they send: ``websockets`` at DEBUG prints every handshake
header, ``Authorization: Bearer <key>`` included. Rather than trust each logger,
the handler redacts every record: the configured secrets wherever they appear,
and any bearer token.

Records are plain text lines, or JSON objects (one a line) that carry the trace and
span ids of the span current where the record was made, so a log line can be found
from its trace in any OTLP backend, and the other way round.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

from opentelemetry import trace

from voxgate.rpc.callers import current_caller

REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets and bearer tokens removed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _BEARER.sub(rf"\g<1>{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.redact(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, trace_id and span_id, caller, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Formatting runs in the call that logged, so the current span is the record's.
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = trace.format_trace_id(span_context.trace_id)
            entry["span_id"] = trace.format_span_id(span_context.span_id)
        caller = current_caller.get()  # the authenticated caller of the call that logged
        if caller is not None:
            entry["caller"] = caller
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, secrets: Iterable[str] = (), *, json_lines: bool = False) -> None:
    """Log to stderr at ``level`` (as JSON lines if asked), redacting ``secrets`` from every record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
