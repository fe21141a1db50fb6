"""Server lifecycle: readiness follows the pool, reflection, drain on stop."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from harness import API_KEY, TEXT, Request, collect, gateway_settings, health_status, running_gateway
from voxgate.app import App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, Faults, UpstreamOptions


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    # Real-time pacing: a stream is still running when the server is told to stop.
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)


async def test_not_serving_until_the_pool_is_warm(upstream: DevUpstream) -> None:
    upstream.set_faults(Faults(connect_delay_ms=60_000))  # no connection can open
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=2)
    async with running_gateway(settings, wait_ready=False) as app:
        assert await health_status(app.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("voxgate.speech.v1.SpeechService", "voxgate.voice.v1.VoiceService"):
            assert await health_status(app.address, service) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not app.pool.ready


async def test_serving_once_warm(gateway: App) -> None:
    assert gateway.pool.ready
    assert await health_status(gateway.address) == health_pb2.HealthCheckResponse.SERVING
    for service in ("voxgate.speech.v1.SpeechService", "voxgate.voice.v1.VoiceService"):
        assert await health_status(gateway.address, service) == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(gateway: App) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await call.read()
        await call.done_writing()
    assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
    names = {service.name for service in reply.list_services_response.service}
    assert {
        "voxgate.speech.v1.SpeechService",
        "voxgate.voice.v1.VoiceService",
        "grpc.health.v1.Health",
    } <= names


async def test_stop_drains_in_flight_streams_and_refuses_new_ones(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, VOXGATE_DRAIN_GRACE_S=30)
    async with running_gateway(settings) as app, Client(app.address) as client:
        pcm = Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM)
        in_flight = client.speech.Synthesize(pcm)
        first = await in_flight.read()
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
        async with grpc.aio.insecure_channel(app.address) as probe:
            watch = health_pb2_grpc.HealthStub(probe).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            stopping = asyncio.create_task(app.stop())
            # Health turns NOT_SERVING at once, while the stream goes on.
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await collect(client, Request(text="Too late."))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        rest: list[speech_pb2.SynthesizeResponse] = []
        while isinstance(response := await in_flight.read(), speech_pb2.SynthesizeResponse):
            rest.append(response)
        assert rest[-1].WhichOneof("content") == "summary"  # finished whole, not cut
        assert rest[-1].summary.audio_bytes == len(first.audio) + sum(len(r.audio) for r in rest[:-1])
        await stopping
    assert app.pool.stats().closing
    assert upstream.stats()["connections_open"] == 0
