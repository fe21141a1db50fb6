"""A local OTLP/gRPC receiver: what an OpenTelemetry Collector would get, kept in memory.

The tests point a real voxgate process at it (``OTEL_EXPORTER_OTLP_ENDPOINT``) and read
back the spans and metrics the process exported over the wire; the tracing benchmark
exports to it. It serves the real ``TraceService`` and ``MetricsService`` of
``opentelemetry-proto`` on loopback, in its own threads, so it works beside any event
loop: ``with OtlpReceiver() as receiver: ...receiver.endpoint...``.

``OtlpReceiver(refuse_metrics=True)`` plays a trace-only backend (Arize Phoenix, for one): it
answers every metrics export with ``UNIMPLEMENTED`` and counts them in ``metrics_refused``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

AttributeValue = Any  # str, bool, int, float, bytes, a list of those, or None


def attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, AttributeValue]:
    """OTLP ``KeyValue`` pairs as a plain dict."""
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind is None:
        return None
    result: AttributeValue = getattr(value, kind)
    return result


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span, decoded: ids in hex, attributes as a dict."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, AttributeValue]
    events: tuple[tuple[str, dict[str, AttributeValue]], ...]
    status_code: int
    status_message: str
    start_ns: int
    end_ns: int
    resource: dict[str, AttributeValue] = field(repr=False)

    @classmethod
    def decode(cls, span: Span, resource: dict[str, AttributeValue]) -> ReceivedSpan:
        return cls(
            name=span.name,
            kind=span.kind,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            attributes=attributes(span.attributes),
            events=tuple((event.name, attributes(event.attributes)) for event in span.events),
            status_code=span.status.code,
            status_message=span.status.message,
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            resource=resource,
        )

    def event(self, name: str) -> dict[str, AttributeValue]:
        """The attributes of the one event called ``name``; raises ``LookupError`` if not one."""
        found = [attrs for event_name, attrs in self.events if event_name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} events {name!r} on span {self.name!r}")
        return found[0]


class OtlpReceiver:
    """Receives OTLP/gRPC traces and metrics on ``127.0.0.1`` (ephemeral port) and keeps them."""

    def __init__(self, host: str = "127.0.0.1", *, refuse_metrics: bool = False) -> None:
        self._host = host
        self._refuse_metrics = refuse_metrics
        self.metrics_refused = 0
        """Metrics exports answered UNIMPLEMENTED (with ``refuse_metrics``)."""
        self._lock = threading.Condition()
        self._traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """For ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``http://``: plaintext gRPC)."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceSink(self._keep_traces), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsSink(self._keep_metrics, self._refuse if self._refuse_metrics else None), server
        )
        self.port = server.add_insecure_port(f"{self._host}:0")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what arrived ------------------------------------------------------------------------

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self._traces)
        return [
            ReceivedSpan.decode(span, attributes(resource_spans.resource.attributes))
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def metrics(self) -> list[Metric]:
        """Every metric of every export, in arrival order (cumulative: the last one has the totals)."""
        with self._lock:
            requests = list(self._metrics)
        return [
            metric
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ]

    def raw(self) -> bytes:
        """Every export request as received on the wire, concatenated (for grepping)."""
        with self._lock:
            return b"".join(r.SerializeToString() for r in (*self._traces, *self._metrics))

    def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Block until ``condition()`` holds after an export arrived, or ``timeout_s`` passed."""
        with self._lock:
            return self._lock.wait_for(condition, timeout_s)

    def _keep_traces(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            self._traces.append(request)
            self._lock.notify_all()

    def _refuse(self) -> None:
        with self._lock:
            self.metrics_refused += 1
            self._lock.notify_all()

    def _keep_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self._lock:
            self._metrics.append(request)
            self._lock.notify_all()


class _TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, keep: Callable[[trace_service_pb2.ExportTraceServiceRequest], None]) -> None:
        self._keep = keep

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._keep(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsSink(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(
        self,
        keep: Callable[[metrics_service_pb2.ExportMetricsServiceRequest], None],
        refuse: Callable[[], None] | None,
    ) -> None:
        self._keep = keep
        self._refuse = refuse

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        if self._refuse is not None:
            self._refuse()
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "unknown service opentelemetry.proto.collector.metrics"
            )
        self._keep(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main() -> None:
    """``python -m support.otlp``: serve until SIGTERM/SIGINT, then print what arrived."""
    import signal

    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # before the server's threads start: they inherit it
    with OtlpReceiver() as receiver:
        print(f"otlp receiver listening on {receiver.endpoint}", flush=True)
        signal.sigwait(signals)
        print(f"received {len(receiver.spans())} spans, {len(receiver.metrics())} metric exports", flush=True)


if __name__ == "__main__":
    main()
