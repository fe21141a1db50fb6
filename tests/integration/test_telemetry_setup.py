"""``telemetry.from_env``: the OTEL_* variables alone decide what is exported, where and how.

Exports go to real receivers on loopback: the OTLP/gRPC one from
``support.otlp`` and, for ``http/protobuf``, a small aiohttp server that
decodes the same protobuf messages the OTLP/HTTP spec posts to ``/v1/traces`` and
``/v1/metrics``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from support.otlp import OtlpReceiver
from voxgate.observability import telemetry


def clear_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)


def test_without_an_endpoint_nothing_is_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_env(monkeypatch)
    threads_before = threading.active_count()
    setup = telemetry.from_env()
    assert not setup.enabled
    assert isinstance(setup.tracer, trace.NoOpTracer)
    assert not setup.tracer.start_span("x").is_recording()
    assert threading.active_count() == threads_before  # no batch processor, no metric reader
    assert "telemetry off" in telemetry.describe(setup)


def test_otel_sdk_disabled_wins_over_an_endpoint() -> None:
    setup = telemetry.from_env({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"})
    assert not setup.enabled


def test_an_unknown_protocol_names_the_variable() -> None:
    with pytest.raises(telemetry.TelemetryConfigError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL: "):
        telemetry.from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}
        )


def test_grpc_export_with_traces_switched_off_sends_metrics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_env(monkeypatch)
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        setup = telemetry.from_env()
        assert (setup.traces, setup.metrics) == (False, True)
        setup.tracer.start_span("not exported").end()
        setup.meter.create_counter("voxgate.test.counter").add(3)
        setup.shutdown()
        assert receiver.spans() == []
        assert [m.name for m in receiver.metrics()] == ["voxgate.test.counter"]
        assert receiver.metrics()[0].sum.data_points[0].as_int == 3


class HttpReceiver:
    """OTLP/HTTP (binary protobuf) on loopback: keeps the decoded requests."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self._traces)
        self.app.router.add_post("/v1/metrics", self._metrics)

    async def _traces(self, request: web.Request) -> web.Response:
        self.traces.append(ExportTraceServiceRequest.FromString(await request.read()))
        return _protobuf(ExportTraceServiceResponse().SerializeToString())

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.append(ExportMetricsServiceRequest.FromString(await request.read()))
        return _protobuf(ExportMetricsServiceResponse().SerializeToString())


def _protobuf(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/x-protobuf")


@pytest.fixture
async def http_receiver() -> AsyncIterator[tuple[HttpReceiver, str]]:
    receiver = HttpReceiver()
    runner = web.AppRunner(receiver.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield receiver, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_http_protobuf_exports_spans_and_metrics(
    http_receiver: tuple[HttpReceiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, endpoint = http_receiver
    clear_otel_env(monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    setup = telemetry.from_env()
    assert (setup.traces, setup.metrics) == (True, True)
    assert "(http/protobuf)" in telemetry.describe(setup)
    with setup.tracer.start_as_current_span("voxgate.test.span"):
        setup.meter.create_histogram("voxgate.test.histogram", unit="ms").record(12.5)
    # The exporters block on HTTP; the receiver answers from this loop meanwhile.
    await asyncio.to_thread(setup.shutdown)
    spans = [s for r in receiver.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [span.name for span in spans] == ["voxgate.test.span"]
    resource = {a.key: a.value.string_value for a in receiver.traces[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "voxgate"  # our default when OTEL_SERVICE_NAME is unset
    metrics = [
        m
        for r in receiver.metrics
        for rm in r.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    ]
    assert [(m.name, m.histogram.data_points[0].sum) for m in metrics] == [("voxgate.test.histogram", 12.5)]
