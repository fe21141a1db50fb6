"""OpenTelemetry set-up from the standard ``OTEL_*`` variables.

:func:`from_env` builds a :class:`Telemetry` (a tracer and a meter) from the
environment alone: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``) switches export on,
``OTEL_EXPORTER_OTLP_PROTOCOL`` picks ``grpc`` (default) or ``http/protobuf``, and
the SDK and exporters read the rest themselves (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``,
``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_EXPORTER_OTLP_HEADERS``, ...). Spans leave in
batches from a background thread; :meth:`Telemetry.shutdown` flushes them.

``OTEL_METRICS_EXPORTER`` (a comma-separated list, default ``otlp``) may name ``prometheus``
instead of or beside ``otlp``: metrics are then served for scraping on
``http://OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT/metrics``
(:mod:`voxgate.observability.prometheus`), no collector needed. An OTLP metrics endpoint that
answers ``UNIMPLEMENTED`` (a trace-only backend) is said once, then rarely, and counted
(:mod:`voxgate.observability.refusals`).

With no endpoint (and no ``prometheus``), or ``OTEL_SDK_DISABLED=true``, nothing is set up: the tracer and
meter are the API's no-op ones, :attr:`Telemetry.enabled` is False and callers skip
their instrumentation (the gRPC interceptor is not even installed).

The names voxgate emits (attributes, events, spans, metrics) are in
:mod:`voxgate.observability.names`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from opentelemetry import metrics, trace

from voxgate.observability import prometheus
from voxgate.observability.names import INSTRUMENTATION_NAME, METRIC_TELEMETRY_METRICS_REFUSED
from voxgate.observability.refusals import MetricsRefusals

if TYPE_CHECKING:  # the SDK is imported lazily: a process with telemetry off never loads it
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

PROTOCOL_GRPC: Final = "grpc"
PROTOCOL_HTTP: Final = "http/protobuf"
_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
CAPTURE_MESSAGE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The GenAI conventions' opt-in for prompt and answer content in spans (off by default)."""
_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
EXPORTER_OTLP: Final = "otlp"
EXPORTER_PROMETHEUS: Final = "prometheus"


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable has a value voxgate cannot honour; the message names it."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A tracer and a meter, and how to flush them. Build with :func:`from_env` or :func:`disabled`."""

    tracer: trace.Tracer
    meter: metrics.Meter
    traces: bool = False
    """Spans are recorded and exported."""
    metrics: bool = False
    """Metrics are collected and exported."""
    capture_message_content: bool = False
    """``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``: prompts and answers go into
    the ``chat`` spans (see :mod:`voxgate.generation.content`)."""
    metrics_url: str | None = None
    """Where Prometheus scrapes them (``OTEL_METRICS_EXPORTER=prometheus``), else None."""
    _shutdowns: tuple[Callable[[], object], ...] = field(default=(), repr=False)

    @property
    def enabled(self) -> bool:
        return self.traces or self.metrics

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporters. Blocks.

        Traces and metrics flush side by side: with the collector unreachable each exporter
        retries until its own ``OTEL_EXPORTER_OTLP_TIMEOUT`` (default 10 s), not one after the other.
        """
        threads = [threading.Thread(target=_quietly, args=(shutdown,)) for shutdown in self._shutdowns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _quietly(shutdown: Callable[[], object]) -> None:
    try:
        shutdown()
    except Exception:
        log.warning("telemetry shutdown failed", exc_info=True)


def disabled() -> Telemetry:
    """No spans, no metrics, no threads: the API's no-op tracer and meter."""
    return Telemetry(tracer=trace.NoOpTracer(), meter=metrics.NoOpMeter(INSTRUMENTATION_NAME))


def from_env(environ: Mapping[str, str] | None = None) -> Telemetry:
    """Set up tracing and metrics as the ``OTEL_*`` variables say (see the module docstring).

    ``environ`` decides what is switched on; the SDK and the exporters read their own
    settings from ``os.environ``. Raises :class:`TelemetryConfigError` for an unknown protocol.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return disabled()
    want_traces = _signal_on(env, "TRACES")
    metric_exporters = _metric_exporters(env)
    want_otlp_metrics = EXPORTER_OTLP in metric_exporters and _signal_on(env, "METRICS")
    want_prometheus = EXPORTER_PROMETHEUS in metric_exporters
    want_metrics = want_otlp_metrics or want_prometheus
    if not (want_traces or want_metrics):
        return disabled()

    from opentelemetry.sdk.resources import Resource

    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the default
    # service name is "unknown_service", so name ours unless the operator did.
    base = {"service.name": "voxgate"} if not env.get("OTEL_SERVICE_NAME") else {}
    resource = Resource.create(base)
    tracer: trace.Tracer = trace.NoOpTracer()
    meter: metrics.Meter = metrics.NoOpMeter(INSTRUMENTATION_NAME)
    shutdowns: list[Callable[[], object]] = []
    metrics_url: str | None = None
    if want_traces:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The sampler comes from OTEL_TRACES_SAMPLER(_ARG); default parentbased_always_on.
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(_protocol(env, "TRACES"))))
        tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME)
        shutdowns.append(tracer_provider.shutdown)
    if want_metrics:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers: list[MetricReader] = []
        if want_otlp_metrics:
            # The export interval comes from OTEL_METRIC_EXPORT_INTERVAL (default 60 s);
            # shutdown collects and exports once more.
            readers.append(PeriodicExportingMetricReader(_metric_exporter(_protocol(env, "METRICS"))))
        refusals = MetricsRefusals()
        if want_otlp_metrics and _protocol(env, "METRICS") == PROTOCOL_GRPC:
            refusals.install()
        if want_prometheus:
            try:
                endpoint = prometheus.start(env)
            except (prometheus.PrometheusConfigError, OSError) as exc:
                raise TelemetryConfigError(f"{_METRICS_EXPORTER}=prometheus: {exc}") from exc
            readers.append(endpoint.reader)
            shutdowns.append(endpoint.shutdown)
            metrics_url = endpoint.url
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        meter = meter_provider.get_meter(INSTRUMENTATION_NAME)
        if want_otlp_metrics:
            # Written from the first refusal on: a backend that accepts metrics never sees it.
            meter.create_observable_counter(
                METRIC_TELEMETRY_METRICS_REFUSED,
                callbacks=[lambda _options: [metrics.Observation(n) for n in (refusals.count,) if n]],
                unit="{export}",
                description="metrics exports the OTLP endpoint refused as UNIMPLEMENTED (trace-only backend)",
            )

        def stop_metrics() -> None:
            # The last export happens inside shutdown: the filter leaves only after it.
            try:
                meter_provider.shutdown()
            finally:
                refusals.uninstall()

        shutdowns.insert(0, stop_metrics)
    return Telemetry(
        tracer=tracer,
        meter=meter,
        traces=want_traces,
        capture_message_content=env.get(CAPTURE_MESSAGE_CONTENT, "").strip().lower() == "true",
        metrics=want_metrics,
        metrics_url=metrics_url,
        _shutdowns=tuple(shutdowns),
    )


def describe(telemetry: Telemetry, environ: Mapping[str, str] | None = None) -> str:
    """One line for the start-up log: what is exported, and where (no headers: they may hold tokens)."""
    if not telemetry.enabled:
        return (
            f"telemetry off (set {_ENDPOINT} to export traces and metrics over OTLP, "
            f"{_METRICS_EXPORTER}=prometheus to serve metrics for scraping)"
        )
    env = os.environ if environ is None else environ
    otlp_metrics = (
        telemetry.metrics and _signal_on(env, "METRICS") and EXPORTER_OTLP in _metric_exporters(env)
    )
    over_otlp = [name for name, on in (("traces", telemetry.traces), ("metrics", otlp_metrics)) if on]
    parts = []
    if over_otlp:
        endpoint = env.get(_ENDPOINT) or "per-signal endpoints"
        parts.append(f"{' and '.join(over_otlp)} over OTLP ({_protocol(env, 'TRACES')}) to {endpoint}")
    if telemetry.metrics_url:
        parts.append(f"metrics for Prometheus at {telemetry.metrics_url}")
    return f"telemetry: {'; '.join(parts)}"


def _signal_on(env: Mapping[str, str], signal: str) -> bool:
    if env.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get(_ENDPOINT))


def _metric_exporters(env: Mapping[str, str]) -> set[str]:
    """``OTEL_METRICS_EXPORTER`` as a set: ``otlp`` (the default), ``prometheus``, both, or none."""
    raw = env.get(_METRICS_EXPORTER, "").strip().lower() or EXPORTER_OTLP
    chosen = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = chosen - {EXPORTER_OTLP, EXPORTER_PROMETHEUS, "none"}
    if unknown:
        raise TelemetryConfigError(
            f"{_METRICS_EXPORTER}: must be {EXPORTER_OTLP}, {EXPORTER_PROMETHEUS}, both "
            f"(comma-separated) or none (got {env.get(_METRICS_EXPORTER)!r})"
        )
    return set() if "none" in chosen else chosen


def _protocol(env: Mapping[str, str], signal: str) -> str:
    variable = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    if not env.get(variable):
        variable = _PROTOCOL
    protocol = env.get(variable, "").strip().lower() or PROTOCOL_GRPC
    if protocol not in (PROTOCOL_GRPC, PROTOCOL_HTTP):
        raise TelemetryConfigError(
            f"{variable}: must be {PROTOCOL_GRPC} or {PROTOCOL_HTTP} (got {env.get(variable)!r})"
        )
    return protocol


def _span_exporter(protocol: str) -> SpanExporter:
    if protocol == PROTOCOL_HTTP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

        return HttpSpans()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

    return GrpcSpans()


def _metric_exporter(protocol: str) -> MetricExporter:
    if protocol == PROTOCOL_HTTP:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

        return HttpMetrics()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

    return GrpcMetrics()
