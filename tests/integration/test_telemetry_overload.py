"""Overload telemetry: a refused call and a salvaged one, on their spans and in the
``voxgate.server.overload`` counter, exported over OTLP/gRPC to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from harness import API_KEY, TEXT, Request, collect, gateway_settings, pool_back_to_size, wait_serving
from support.otlp import OtlpReceiver, attributes
from voxgate.app import App
from voxgate.client import Client
from voxgate.observability import telemetry
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, UpstreamOptions

PCM = speech_pb2.AUDIO_FORMAT_PCM
HOLDER_TRACE, REFUSED_TRACE, PARENT = "d0" * 16, "d1" * 16, "d2" * 8


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    # Paced at real time, so the holder's stream is still running when the second call arrives.
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        yield receiver


def traced(trace_id: str) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{trace_id}-{PARENT}-01"),)


async def test_a_refused_and_a_salvaged_call_in_spans_and_metrics(
    upstream: DevUpstream, receiver: OtlpReceiver
) -> None:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=2, VOXGATE_MAX_CONCURRENT_RPCS=1)
    app = App(settings, telemetry.from_env())
    await app.start()
    try:
        await wait_serving(app.address)
        async with Client(app.address) as client:
            holder = client.speech.Synthesize(Request(text=TEXT, format=PCM), metadata=traced(HOLDER_TRACE))
            first = await holder.read()
            assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
            call = client.speech.Synthesize(
                Request(text="Refused.", format=PCM), metadata=traced(REFUSED_TRACE)
            )
            with pytest.raises(grpc.aio.AioRpcError):
                async for _ in call:
                    pass
            holder.cancel()
            await pool_back_to_size(app)
            assert (await collect(client, Request(text="After.", format=PCM)))[0]
    finally:
        await app.stop()  # flushes spans and metrics to the receiver

    spans = receiver.spans()
    [refused] = [s for s in spans if s.trace_id == REFUSED_TRACE and s.parent_span_id == PARENT]
    assert refused.attributes["voxgate.overload.refused"] == "max_concurrent_rpcs"
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    [salvaged] = [s for s in spans if s.trace_id == HOLDER_TRACE and s.parent_span_id == PARENT]
    assert salvaged.attributes["voxgate.overload.salvage"] == "started"

    counts: dict[tuple[object, object], int] = {}
    for metric in receiver.metrics():
        if metric.name == "voxgate.server.overload":
            for point in metric.sum.data_points:
                pairs = attributes(point.attributes)
                counts[pairs["voxgate.overload.kind"], pairs["voxgate.overload.reason"]] = point.as_int
    assert counts == {("refused", "max_concurrent_rpcs"): 1, ("salvaged", ""): 1}
