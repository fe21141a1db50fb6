"""``OTEL_METRICS_EXPORTER=prometheus``: voxgate's metrics on an HTTP ``/metrics`` endpoint to scrape.

The standard variables place it: ``OTEL_EXPORTER_PROMETHEUS_HOST`` (default ``localhost``) and
``OTEL_EXPORTER_PROMETHEUS_PORT`` (default 9464). With ``voxgate serve --workers N`` each worker is
its own process with its own pool and metrics, so worker *i* listens on port + *i* (N ports to
scrape). Besides voxgate's own metrics the endpoint serves the Prometheus client's process and
Python GC collectors (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ...).

Names follow the OpenTelemetry-to-Prometheus compatibility rules (dots become ``_``, the unit is a
suffix: ``voxgate.tts.first_packet_delay`` in ``ms`` is ``voxgate_tts_first_packet_delay_milliseconds``,
counters end in ``_total``); docs/operations.md lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from voxgate.workers import WORKER_ENV

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics.export import MetricReader

HOST_ENV: Final = "OTEL_EXPORTER_PROMETHEUS_HOST"
PORT_ENV: Final = "OTEL_EXPORTER_PROMETHEUS_PORT"
DEFAULT_HOST: Final = "localhost"
DEFAULT_PORT: Final = 9464


class PrometheusConfigError(ValueError):
    """``OTEL_EXPORTER_PROMETHEUS_PORT`` is not a port; the message names it."""


@dataclass(frozen=True, slots=True)
class PrometheusEndpoint:
    """A metric reader and the HTTP server that serves what it collects."""

    reader: MetricReader
    url: str
    """``http://host:port/metrics``, with the port actually bound (``_PORT=0`` picks one)."""
    _server: WSGIServer

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def address(env: Mapping[str, str]) -> tuple[str, int]:
    """Host and port this process serves ``/metrics`` on (a worker adds its index to the port)."""
    host = env.get(HOST_ENV, "").strip() or DEFAULT_HOST
    raw = env.get(PORT_ENV, "").strip()
    try:
        port = int(raw) if raw else DEFAULT_PORT
    except ValueError:
        raise PrometheusConfigError(f"{PORT_ENV}: must be a port number (got {raw!r})") from None
    if not 0 <= port <= 65535:
        raise PrometheusConfigError(f"{PORT_ENV}: must be a port number 0-65535 (got {port})")
    worker = env.get(WORKER_ENV, "")
    if port and worker.isdigit():
        port += int(worker)
    return host, port


def start(env: Mapping[str, str] | None = None) -> PrometheusEndpoint:
    """Start serving ``/metrics`` (a daemon thread) and return the reader to give the MeterProvider."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    host, port = address(os.environ if env is None else env)
    # A registry of our own, not the client's global one: a second set-up in one process (tests)
    # must not find the first one's collectors.
    registry = CollectorRegistry(auto_describe=True)
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    reader = PrometheusMetricReader(registry=registry)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return PrometheusEndpoint(reader=reader, url=f"http://{shown}:{bound}/metrics", _server=server)
