"""The frame timeout: an upstream that goes silent mid-task fails the call; a paced one does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from harness import API_KEY, TEXT, Request, collect
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import UpstreamOptions

FRAME_TIMEOUT_S = 0.5


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    # Real-time pacing: 100 ms frames, a clip of several seconds, far longer than the limit.
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    return {"VOXGATE_FRAME_TIMEOUT_S": FRAME_TIMEOUT_S, "VOXGATE_MAX_ATTEMPTS": 1}


async def test_a_paced_stream_longer_than_the_frame_timeout_completes(client: Client) -> None:
    audio, summary = await collect(client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM))
    seconds = len(audio) / 2 / summary.sample_rate
    assert seconds > 6 * FRAME_TIMEOUT_S, "the clip must outlast the limit many times over"
    assert summary.audio_bytes == len(audio)


async def test_an_upstream_silent_past_the_frame_timeout_fails_the_call(
    client: Client, set_faults: Callable[..., None]
) -> None:
    set_faults(first_packet_delay_ms=20_000)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"upstream sent nothing for {FRAME_TIMEOUT_S:.3g}s" in (info.value.details() or "")
