"""Span events both servicers record."""

from __future__ import annotations

from opentelemetry import trace

from voxgate.observability import names


def record_retry(failed_attempt: int, reason: str, delay_s: float) -> None:
    """On the current (RPC) span: attempt ``failed_attempt`` failed for ``reason``; the next one
    starts in ``delay_s``."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            names.EVENT_RETRY,
            {
                names.RETRY_ATTEMPT: failed_attempt,
                names.RETRY_REASON: reason,
                names.RETRY_DELAY_MS: delay_s * 1000,
            },
        )
