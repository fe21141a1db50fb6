"""Pool telemetry beyond the happy path: an overflow lease, a client cancel, the evictions they cause.

The gateway runs in this process with telemetry from ``telemetry.from_env`` exporting over
OTLP/gRPC to a real receiver; its pool of one connection is held by a stream paced at real
time while a second call arrives, so the overflow policy lends a temporary connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from harness import API_KEY, TEXT, Request, gateway_settings, pool_back_to_size, wait_serving
from support.otlp import OtlpReceiver, ReceivedSpan, attributes
from voxgate.app import App
from voxgate.client import Client
from voxgate.observability import telemetry
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, UpstreamOptions

PCM = speech_pb2.AUDIO_FORMAT_PCM
TRACE_ID, PARENT = "c0" * 16, "c1" * 8


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


async def test_an_overflow_lease_and_a_cancelled_call_in_spans_and_metrics(
    upstream: DevUpstream, receiver: OtlpReceiver
) -> None:
    # Salvage off: the cancelled call's connection is closed inside the call, so its span shows it.
    settings = gateway_settings(
        upstream, VOXGATE_POOL_MAX_SIZE=1, VOXGATE_POOL_OVERFLOW="overflow", VOXGATE_SALVAGE_TIMEOUT_S=0
    )
    app = App(settings, telemetry.from_env())
    await app.start()
    try:
        await wait_serving(app.address)
        async with Client(app.address) as client:
            holder = client.speech.Synthesize(Request(text=TEXT, format=PCM))
            first = await holder.read()  # the one pooled connection is busy
            assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
            call = client.speech.Synthesize(
                Request(text="Overflow.", format=PCM),
                metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT}-01"),),
            )
            replies = [reply async for reply in call]
            assert replies[-1].summary.attempts == 1
            holder.cancel()
            await pool_back_to_size(app)
    finally:
        await app.stop()  # flushes spans and metrics to the receiver

    spans = receiver.spans()
    [server] = [s for s in spans if s.trace_id == TRACE_ID and s.parent_span_id == PARENT]
    [acquire] = children(spans, server, "voxgate.pool.acquire")
    assert acquire.attributes["voxgate.pool.lease.overflow"] is True
    assert acquire.attributes["voxgate.pool.connection.warm"] is False  # opened for this call
    assert acquire.attributes["voxgate.pool.connection.used"] == 2  # the holder's and this one
    assert acquire.attributes["voxgate.pool.connection.max"] == 1
    # The temporary connection is closed after its one use, inside the call.
    assert server.event("voxgate.pool.connection.evicted")["voxgate.pool.eviction.reason"] == "overflow"

    [cancelled] = [s for s in spans if s.name.endswith("/Synthesize") and s.trace_id != TRACE_ID]
    assert cancelled.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert cancelled.event("voxgate.pool.connection.evicted")["voxgate.pool.eviction.reason"] == "discarded"
    [task] = children(spans, cancelled, "voxgate.tts.task")
    assert task.status_code == 2  # ERROR: the task never finished

    leases = last_sums(receiver, "voxgate.pool.leases")
    assert leases[(("voxgate.pool.connection.warm", False), ("voxgate.pool.lease.overflow", True))] == 1
    evicted = last_sums(receiver, "voxgate.pool.connection.evicted")
    assert evicted[(("voxgate.pool.eviction.reason", "overflow"),)] == 1
    assert evicted[(("voxgate.pool.eviction.reason", "discarded"),)] == 1


def children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]


def last_sums(receiver: OtlpReceiver, name: str) -> dict[tuple[tuple[str, object], ...], int]:
    """The latest cumulative value of counter ``name`` per attribute set, pool name left out."""
    sums: dict[tuple[tuple[str, object], ...], int] = {}
    for metric in receiver.metrics():
        if metric.name == name:
            for point in metric.sum.data_points:
                pairs = attributes(point.attributes)
                assert pairs.pop("voxgate.pool.name") == "tts"
                sums[tuple(sorted(pairs.items()))] = point.as_int
    return sums
