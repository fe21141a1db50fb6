"""A metrics backend that says no: say it once, then rarely, and count it.

A trace-only OTLP backend (Arize Phoenix, for one) answers every metrics export with gRPC
``UNIMPLEMENTED``. The OTLP exporter logs that as an ERROR at every export interval, forever, which
buries real errors. :class:`MetricsRefusals` sits first on the exporter's logger: the first refusal
is logged once as a WARNING that says what to do (a per-signal endpoint, or
``OTEL_METRICS_EXPORTER=none``/``prometheus``), later ones at most once per ``repeat_s`` with the
count so far, and every refusal is counted (``voxgate.telemetry.metrics.refused``). Other errors of
the exporter pass through untouched. docs/telemetry.md has the per-signal set-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

import grpc

GRPC_EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.grpc.exporter"
REPEAT_S: Final = 600.0
"""How often a refusal that goes on is said again."""


class MetricsRefusals(logging.Filter):
    """Rewrites, thins out and counts the OTLP gRPC exporter's "metrics UNIMPLEMENTED" errors."""

    def __init__(self, repeat_s: float = REPEAT_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._repeat_s = repeat_s
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._said_at: float | None = None

    @property
    def count(self) -> int:
        """Metrics exports the backend refused so far."""
        with self._lock:
            return self._count

    def filter(self, record: logging.LogRecord) -> bool:
        endpoint = _refused_metrics_endpoint(record)
        if endpoint is None:
            return True
        with self._lock:
            self._count += 1
            count = self._count
            now = self._clock()
            if self._said_at is not None and now - self._said_at < self._repeat_s:
                return False
            self._said_at = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = None
        record.args = ()
        if count == 1:
            record.msg = (
                f"the OTLP endpoint {endpoint} does not accept metrics (UNIMPLEMENTED): a trace-only "
                "backend? Send metrics elsewhere with OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, serve them "
                "for scraping with OTEL_METRICS_EXPORTER=prometheus, or stop them with "
                f"OTEL_METRICS_EXPORTER=none; said again at most every {self._repeat_s:.0f} s"
            )
        else:
            record.msg = f"the OTLP endpoint {endpoint} still refuses metrics: {count} exports refused"
        return True

    def install(self) -> None:
        """First on the exporter's logger, ahead of the SDK's own duplicate filter (which would hide
        refusals from the count)."""
        logger = logging.getLogger(GRPC_EXPORTER_LOGGER)
        if self not in logger.filters:
            logger.filters.insert(0, self)

    def uninstall(self) -> None:
        logging.getLogger(GRPC_EXPORTER_LOGGER).removeFilter(self)


def _refused_metrics_endpoint(record: logging.LogRecord) -> str | None:
    """The endpoint, if the record is "Failed to export metrics to E, error code: UNIMPLEMENTED"."""
    args = record.args
    if record.levelno < logging.ERROR or not isinstance(args, tuple) or len(args) != 4:
        return None
    exporting, endpoint, code, _details = args
    if exporting != "metrics" or code != grpc.StatusCode.UNIMPLEMENTED:
        return None
    return str(endpoint)
