"""OpenTelemetry set-up from the standard ``OTEL_*`` variables, and every name voxgate emits.

:func:`from_env` builds a :class:`Telemetry` (a tracer and a meter) from the
environment alone: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``) switches export on,
``OTEL_EXPORTER_OTLP_PROTOCOL`` picks ``grpc`` (default) or ``http/protobuf``, and
the SDK and exporters read the rest themselves (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``,
``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_EXPORTER_OTLP_HEADERS``, ...). Spans leave in
batches from a background thread; :meth:`Telemetry.shutdown` flushes them.

With no endpoint, or ``OTEL_SDK_DISABLED=true``, nothing is set up: the tracer and
meter are the API's no-op ones, :attr:`Telemetry.enabled` is False and callers skip
their instrumentation (the gRPC interceptor is not even installed).

The names below are the one place attribute, event, span and metric names live.
Pool facts follow the shape of OTel's ``db.client.connection.*`` conventions under
``voxgate.pool.*``; generation follows the GenAI conventions (``gen_ai.*``); RPCs the
RPC conventions (``rpc.*``). Durations in span attributes and histograms are in
milliseconds, the unit every other voxgate figure uses.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from opentelemetry import metrics, trace

if TYPE_CHECKING:  # the SDK is imported lazily: a process with telemetry off never loads it
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME: Final = "voxgate"

# --- spans and events ------------------------------------------------------------------------

SPAN_POOL_ACQUIRE: Final = "voxgate.pool.acquire"
SPAN_TTS_TASK: Final = "voxgate.tts.task"
EVENT_FIRST_PACKET: Final = "voxgate.tts.first_packet"
EVENT_RETRY: Final = "voxgate.retry"
EVENT_EVICTED: Final = "voxgate.pool.connection.evicted"
EVENT_FIRST_CHUNK: Final = "voxgate.generation.first_chunk"
EVENT_EXCEPTION: Final = "exception"

# --- attributes: RPC (OTel RPC conventions) --------------------------------------------------

RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
RPC_GRPC_STATUS_CODE: Final = "rpc.grpc.status_code"
NETWORK_PEER_ADDRESS: Final = "network.peer.address"
NETWORK_PEER_PORT: Final = "network.peer.port"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# --- attributes: the pool (shape of db.client.connection.*) -----------------------------------

POOL_NAME: Final = "voxgate.pool.name"
POOL_WAIT_MS: Final = "voxgate.pool.connection.wait_time_ms"
POOL_REUSED: Final = "voxgate.pool.connection.reused"
"""The lent connection had already run a task."""
POOL_WARM: Final = "voxgate.pool.connection.warm"
"""The lent connection was open before the request asked: it paid no connect."""
POOL_CONNECTION_AGE_MS: Final = "voxgate.pool.connection.age_ms"
POOL_IDLE: Final = "voxgate.pool.connection.idle"
POOL_USED: Final = "voxgate.pool.connection.used"
POOL_PENDING: Final = "voxgate.pool.connection.pending_requests"
POOL_MAX: Final = "voxgate.pool.connection.max"
POOL_QUEUED: Final = "voxgate.pool.lease.queued"
POOL_OVERFLOW: Final = "voxgate.pool.lease.overflow"
"""Served by a temporary connection beyond ``max``, closed after use."""
POOL_REFUSAL_REASON: Final = "voxgate.pool.lease.refusal_reason"
POOL_EVICTION_REASON: Final = "voxgate.pool.eviction.reason"
POOL_CONNECTION_STATE: Final = "voxgate.pool.connection.state"
"""``idle`` or ``used``, as ``db.client.connection.state``."""

# --- attributes: speech synthesis ------------------------------------------------------------

TTS_TASK_ID: Final = "voxgate.tts.task_id"
TTS_REQUEST_ID: Final = "voxgate.tts.request_id"
TTS_MODEL: Final = "voxgate.tts.model"
TTS_VOICE: Final = "voxgate.tts.voice"
TTS_FORMAT: Final = "voxgate.tts.format"
TTS_SAMPLE_RATE: Final = "voxgate.tts.sample_rate"
TTS_CHARACTERS: Final = "voxgate.tts.characters"
TTS_AUDIO_BYTES: Final = "voxgate.tts.audio_bytes"
TTS_AUDIO_CHUNKS: Final = "voxgate.tts.audio_chunks"
TTS_FIRST_PACKET_DELAY_MS: Final = "voxgate.tts.first_packet_delay_ms"
"""On the task span: run-task sent to first audio. On the RPC span: RPC received to first audio."""
TTS_ATTEMPT: Final = "voxgate.tts.attempt"
TTS_TEXT_PIECES: Final = "voxgate.tts.text_pieces"
"""SynthesizeStream: text pieces the caller sent. Speak: continue-tasks sent upstream."""
TTS_TEXT_TO_FIRST_AUDIO_MS: Final = "voxgate.tts.text_to_first_audio_ms"
"""SynthesizeStream: first text piece received to first audio in hand."""
VOICE_TIME_TO_FIRST_TOKEN_MS: Final = "voxgate.voice.time_to_first_token_ms"
VOICE_TIME_TO_FIRST_AUDIO_MS: Final = "voxgate.voice.time_to_first_audio_ms"
VOICE_FAILED_HALF: Final = "voxgate.voice.failed_half"
"""Speak: ``generation`` or ``speech``, the half whose failure ended the call."""
TTS_ATTEMPTS: Final = "voxgate.tts.attempts"
RETRY_ATTEMPT: Final = "voxgate.retry.attempt"
"""The attempt that failed (1 for the first)."""
RETRY_DELAY_MS: Final = "voxgate.retry.delay_ms"
RETRY_REASON: Final = "voxgate.retry.reason"

# --- attributes: generation (OTel GenAI conventions, then ours) --------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TIME_TO_FIRST_CHUNK_MS: Final = "voxgate.generation.time_to_first_chunk_ms"
"""Attempt start to the first streamed chunk."""
GENERATION_REPETITION_PENALTY: Final = "voxgate.generation.request.repetition_penalty"
GENERATION_ENABLE_THINKING: Final = "voxgate.generation.request.enable_thinking"
GENERATION_ATTEMPT: Final = "voxgate.generation.attempt"
HTTP_CONNECTION_REUSED: Final = "voxgate.http.connection.reused"
"""aiohttp sent the request on a kept-alive connection (False: it opened one)."""
HTTP_CONNECTION_CREATE_MS: Final = "voxgate.http.connection.create_time_ms"
HTTP_CONNECTION_WAIT_MS: Final = "voxgate.http.connection.wait_time_ms"
"""Time queued for a connection because the session's limit was reached."""

# --- metrics ---------------------------------------------------------------------------------

METRIC_REQUESTS: Final = "voxgate.server.requests"
METRIC_REQUEST_DURATION: Final = "voxgate.server.request.duration"
METRIC_FIRST_PACKET_DELAY: Final = "voxgate.tts.first_packet_delay"
METRIC_TEXT_TO_FIRST_AUDIO: Final = "voxgate.tts.text_to_first_audio"
METRIC_TEXT_PIECES: Final = "voxgate.tts.text_pieces"
METRIC_VOICE_FIRST_AUDIO: Final = "voxgate.voice.time_to_first_audio"
METRIC_POOL_WAIT: Final = "voxgate.pool.connection.wait_time"
METRIC_POOL_CREATE_TIME: Final = "voxgate.pool.connection.create_time"
METRIC_POOL_CREATED: Final = "voxgate.pool.connection.created"
METRIC_POOL_REUSED: Final = "voxgate.pool.connection.reused"
METRIC_POOL_EVICTED: Final = "voxgate.pool.connection.evicted"
METRIC_POOL_LEASES: Final = "voxgate.pool.leases"
METRIC_POOL_REFUSED: Final = "voxgate.pool.lease.refused"
METRIC_POOL_COUNT: Final = "voxgate.pool.connection.count"
METRIC_POOL_MAX: Final = "voxgate.pool.connection.max"
METRIC_POOL_PENDING: Final = "voxgate.pool.connection.pending_requests"
METRIC_POOL_SERVING: Final = "voxgate.pool.serving"
METRIC_POOL_HELD_LONG: Final = "voxgate.pool.lease.held_long"
METRIC_TIME_TO_FIRST_TOKEN: Final = "voxgate.generation.time_to_first_token"
METRIC_GEN_AI_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_HTTP_CREATED: Final = "voxgate.http.connection.created"
METRIC_HTTP_REUSED: Final = "voxgate.http.connection.reused"

# --- set-up ----------------------------------------------------------------------------------

PROTOCOL_GRPC: Final = "grpc"
PROTOCOL_HTTP: Final = "http/protobuf"
_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"


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
    want_metrics = _signal_on(env, "METRICS")
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

        # The export interval comes from OTEL_METRIC_EXPORT_INTERVAL (default 60 s);
        # shutdown collects and exports once more.
        reader = PeriodicExportingMetricReader(_metric_exporter(_protocol(env, "METRICS")))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = meter_provider.get_meter(INSTRUMENTATION_NAME)
        shutdowns.append(meter_provider.shutdown)
    return Telemetry(
        tracer=tracer,
        meter=meter,
        traces=want_traces,
        metrics=want_metrics,
        _shutdowns=tuple(shutdowns),
    )


def describe(telemetry: Telemetry, environ: Mapping[str, str] | None = None) -> str:
    """One line for the start-up log: what is exported, and where (no headers: they may hold tokens)."""
    if not telemetry.enabled:
        return f"telemetry off (set {_ENDPOINT} to export traces and metrics over OTLP)"
    env = os.environ if environ is None else environ
    signals = [name for name, on in (("traces", telemetry.traces), ("metrics", telemetry.metrics)) if on]
    endpoint = env.get(_ENDPOINT) or "per-signal endpoints"
    return f"telemetry: {' and '.join(signals)} over OTLP ({_protocol(env, 'TRACES')}) to {endpoint}"


def _signal_on(env: Mapping[str, str], signal: str) -> bool:
    if env.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get(_ENDPOINT))


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
