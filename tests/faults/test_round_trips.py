"""Detection in round trips, the no-false-alarm side: a warm connection that is slow but alive
(it answers the ping its silence triggers) is waited out to the full timeouts, never given up on.
The dead side (no pong) needs a real blackhole: tests/netns. Real gateway, real embedded upstream.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import Request, collect
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
