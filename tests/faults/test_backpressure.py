"""Backpressure: a gRPC client that stops reading holds the upstream back.

The client reads one chunk, then blocks (on an event, not a clock) while the upstream could
produce a clip of ~88 MB as fast as espeak-ng runs. If voxgate buffered what its reader did
not take, the upstream would send it all; instead, what the upstream has sent beyond what the
client received levels off at the socket buffers along the way (loopback TCP autotunes to a
few MB per socket, two hops) and stays there until the client reads again.
"""

from __future__ import annotations

import asyncio

from harness import API_KEY, TEXT, Request, gateway_settings, running_gateway, wait_until
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, UpstreamOptions

LONG_TEXT = " ".join([TEXT] * 200)  # ~15,000 characters (limit: 20,000): ~15 minutes of speech
SAMPLE_RATE = 48_000  # 96 kB of PCM per second of speech: a ~88 MB clip
IN_FLIGHT_BOUND = 24 * 1024 * 1024
"""Bytes sent by the upstream and not yet read by the client, at most: kernel socket buffers
(rmem/wmem autotuning, ~10 MB per loopback hop), websockets' 16-frame queue, HTTP/2 windows."""


async def test_a_reader_that_stops_holds_the_upstream_back_and_loses_nothing() -> None:
    upstream = DevUpstream(UpstreamOptions(api_key=API_KEY))  # rtf 0: as fast as produced
    await upstream.start()
    try:
        # Backpressure inside the write-stall limit; the limit itself: tests/faults/test_overload.py.
        settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=1, VOXGATE_WRITE_STALL_TIMEOUT_S=120)
        async with running_gateway(settings) as app, Client(app.address) as client:
            request = Request(text=LONG_TEXT, format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=SAMPLE_RATE)
            call = client.speech.Synthesize(request)
            reading = asyncio.Event()
            received = 0
            summary: speech_pb2.SynthesisSummary | None = None

            async def slow_reader() -> None:
                nonlocal received, summary
                while isinstance(response := await call.read(), speech_pb2.SynthesizeResponse):
                    if response.WhichOneof("content") == "summary":
                        summary = response.summary
                        continue
                    received += len(response.audio)
                    await reading.wait()  # blocked after the first chunk until the test lets go

            reader = asyncio.create_task(slow_reader())
            await wait_until(lambda: received > 0, "the first chunk")
            plateau = await sent_levels_off(upstream)
            assert plateau - received < IN_FLIGHT_BOUND
            reading.set()
            await reader
            assert summary is not None, "the stream must end with its summary"
            assert summary.audio_bytes == received == upstream.stats()["audio_bytes_sent"]
            assert received > 2 * IN_FLIGHT_BOUND  # a gateway that buffered it all would have failed
    finally:
        await upstream.stop()


async def sent_levels_off(upstream: DevUpstream, quiet_polls: int = 20) -> int:
    """The upstream's audio bytes sent, once unchanged over ``quiet_polls`` polls in a row."""
    history: list[int] = []

    def level() -> bool:
        history.append(upstream.stats()["audio_bytes_sent"])
        recent = history[-quiet_polls:]
        return len(recent) == quiet_polls and len(set(recent)) == 1

    await wait_until(level, "the upstream held back by the stopped reader", timeout_s=60)
    return history[-1]
