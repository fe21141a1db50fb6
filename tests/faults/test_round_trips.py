"""Detection in round trips (docs/operations.md#detection-and-recovery) on loopback: a warm
connection that is slow but alive (it answers the ping its silence triggers) is waited out to the
full timeouts, never given up on; one that goes half-open mid-task (no frames, no pongs) is given
up on in about a second, not at the frame timeout. Blackholes before task-started, and the
recovery, are in tests/netns. Real gateway, real embedded upstream.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from harness import TEXT, Request, collect
from voxgate.app import App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, Faults

PCM = speech_pb2.AUDIO_FORMAT_PCM


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    # Patience 0.1 s on loopback: any silence past it is probed with a ping.
    return {"VOXGATE_POOL_MAX_SIZE": 2, "VOXGATE_ROUND_TRIP_FLOOR_S": 0.1}


async def test_a_slow_task_start_on_a_live_connection_is_waited_for(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    await collect(client, Request(text="Warm up.", format=PCM))  # the connection has shown its round trips
    upstream.set_faults(Faults(task_started_delay_ms=1500))
    audio, summary = await collect(client, Request(text="Slow to start.", format=PCM))
    assert audio and summary.attempts == 1
    assert gateway.pool.stats().evicted.get("unresponsive", 0) == 0


async def test_a_slow_first_frame_on_a_live_connection_is_waited_for(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    await collect(client, Request(text="Warm up.", format=PCM))
    upstream.set_faults(Faults(first_packet_delay_ms=1500))
    audio, summary = await collect(client, Request(text="Slow to speak.", format=PCM))
    assert audio and summary.attempts == 1
    assert gateway.pool.stats().evicted.get("unresponsive", 0) == 0


async def test_a_stream_whose_peer_goes_half_open_ends_unavailable_in_about_a_second(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    assert gateway.settings.frame_timeout_s == 30.0  # the default backstop, never reached here
    await collect(client, Request(text="Warm up.", format=PCM))
    upstream.set_faults(Faults(stall_after_bytes=8000, times=1))  # then no frames and no pongs
    call = client.speech.Synthesize(Request(text=TEXT, format=PCM))
    first = await call.read()
    assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while isinstance(response := await call.read(), speech_pb2.SynthesizeResponse):
            assert response.WhichOneof("content") == "audio", "a summary would hide the truncation"
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "missed a pong" in (info.value.details() or "")
    assert loop.time() - started < 3.0  # two patiences of 0.1 s and the stream's own pace, not 30 s
    assert gateway.pool.stats().evicted.get("unresponsive", 0) == 1
