"""Synthesize while streams are still running: cancel, deadline, a busy pool.

The upstream paces audio at real time here, so a stream is reliably mid-flight
when the test acts on it (the tests wait on the first chunk, never on a clock).
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from harness import API_KEY, TEXT, Request, collect, gateway_settings, pool_back_to_size, running_gateway
from voxgate.app import App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, UpstreamOptions


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    # Paced at real time so a stream is still running when the test cancels it.
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)


async def test_cancel_mid_stream_leaves_the_pool_healthy(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    call = client.speech.Synthesize(Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM))
    first = await call.read()
    assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
    call.cancel()
    # The cancelled task is read to its end in the background and its connection kept
    # (speech/salvage.py); twenty more calls all succeed meanwhile and after.
    fast = Request(text="Again.", format=speech_pb2.AUDIO_FORMAT_PCM)
    results = await asyncio.gather(*(collect(client, fast) for _ in range(20)))
    assert all(audio for audio, _ in results)
    await pool_back_to_size(gateway)
    assert gateway.overload.salvaged == 1
    assert gateway.pool.stats().evicted.get("discarded", 0) == 0
    assert upstream.stats()["invalid_action_errors"] == 0


async def test_deadline_mid_stream_is_deadline_exceeded_and_the_pool_recovers(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM), timeout_s=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    results = await asyncio.gather(*(collect(client, Request(text="Recovered.")) for _ in range(10)))
    assert all(audio for audio, _ in results)
    assert upstream.stats()["invalid_action_errors"] == 0


async def test_exhausted_pool_is_resource_exhausted(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=1, VOXGATE_POOL_ACQUIRE_TIMEOUT_S=0.2)
    async with running_gateway(settings) as app, Client(app.address) as client:
        holder = client.speech.Synthesize(Request(text=TEXT))
        first = await holder.read()
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio  # the only connection is busy
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client, Request(text="Wait for me."))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        holder.cancel()
