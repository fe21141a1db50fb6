"""``min_chunk_ms``: after the first chunk, audio frames voxgate has already received go out joined,
up to the requested duration; the first chunk is never held back, nothing waits for a frame still
to come, and the audio is byte for byte the audio without it.

The embedded upstream sends 20 ms frames (``chunk_ms``); unpaced (``rtf=0``) they arrive faster than
a gRPC write, so they pile up behind the writer; paced at real time each arrives alone.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from harness import API_KEY, TEXT, Request
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import UpstreamOptions

PCM = speech_pb2.AUDIO_FORMAT_PCM
FRAME_MS = 20
SAMPLE_RATE = 22050
FRAME_BYTES = SAMPLE_RATE * 2 * FRAME_MS // 1000


async def synthesize(client: Client, **fields: Any) -> tuple[list[bytes], speech_pb2.SynthesisSummary]:
    replies = [reply async for reply in client.speech.Synthesize(Request(text=TEXT, format=PCM, **fields))]
    *audio, last = replies
    assert all(reply.HasField("audio") for reply in audio) and last.HasField("summary")
    return [reply.audio for reply in audio], last.summary


@pytest.mark.parametrize("upstream_options", [UpstreamOptions(api_key=API_KEY, rtf=0, chunk_ms=FRAME_MS)])
async def test_frames_already_received_are_joined_into_the_same_bytes(client: Client) -> None:
    plain, plain_summary = await synthesize(client)
    joined, summary = await synthesize(client, min_chunk_ms=200)
    assert b"".join(joined) == b"".join(plain)  # the same audio, in the same order
    assert joined[0] == plain[0]  # the first chunk goes out alone, as it arrived
    assert len(joined) < len(plain)  # frames did pile up behind the writes, and were joined
    limit = SAMPLE_RATE * 2 * 200 // 1000
    # A message stops taking frames once it holds 200 ms: at most one frame past the limit.
    assert all(len(chunk) < limit + FRAME_BYTES for chunk in joined)
    assert summary.audio_chunks == len(joined) and plain_summary.audio_chunks == len(plain)
    assert summary.audio_bytes == plain_summary.audio_bytes


@pytest.mark.parametrize("upstream_options", [UpstreamOptions(api_key=API_KEY, rtf=1.0, chunk_ms=FRAME_MS)])
async def test_a_real_time_stream_is_not_held_back_to_fill_a_chunk(client: Client) -> None:
    # Paced at real time, most frames are written before the next one arrives: with min_chunk_ms at
    # its largest (a second), messages still mostly hold one frame; waiting to fill a second would
    # make them about 50 frames each. (tests/unit/test_coalesce.py shows it never waits, exactly.)
    plain, _ = await synthesize(client)
    joined, summary = await synthesize(client, min_chunk_ms=1000)
    assert b"".join(joined) == b"".join(plain)
    assert joined[0] == plain[0]
    single = sum(1 for chunk in joined if len(chunk) <= FRAME_BYTES)
    assert single > len(joined) / 2, [len(chunk) for chunk in joined]
    assert summary.first_packet_delay_ms < 500


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"min_chunk_ms": 0}, "min_chunk_ms: 0 is outside [1, 1000]"),
        ({"min_chunk_ms": 1001}, "min_chunk_ms: 1001 is outside [1, 1000]"),
        ({"min_chunk_ms": 100, "format": speech_pb2.AUDIO_FORMAT_MP3}, "min_chunk_ms: is only valid with"),
    ],
)
async def test_bad_min_chunk_ms_is_invalid_argument_naming_the_field(
    client: Client, fields: dict[str, Any], reason: str
) -> None:
    request = Request(text=TEXT, **{"format": PCM, **fields})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in client.speech.Synthesize(request):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in (caught.value.details() or "")
