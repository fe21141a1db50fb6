"""SIGTERM during 20 streams, on `voxgate serve` run as a real process (what Kubernetes does).

Health turns NOT_SERVING at once, new calls get UNAVAILABLE, the 20 in-flight streams finish
whole within the grace period, then the process closes everything and exits 0. A second
signal during the drain cuts it short: streams end UNAVAILABLE at once and the process exits.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import TEXT, Process, Request, child_env, collect
from voxgate.client import Client
from voxgate.rpc.errors import MD_AUDIO_BYTES_SENT
from voxgate.speech.v1 import speech_pb2

STREAMS = 20


async def test_sigterm_during_twenty_streams_drains_them_whole() -> None:
    server = Process(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pool-max-size",
            str(STREAMS),
            "--drain-grace-s",
            "60",
            "--dev-upstream-rtf",
            "1.0",  # real-time pacing: every stream is mid-flight when the signal comes
        ],
        child_env(),
    )
    address = await asyncio.to_thread(server.start, "voxgate listening on ")
    try:
        async with Client(address) as client, grpc.aio.insecure_channel(address) as probe:
            watch = health_pb2_grpc.HealthStub(probe).Watch(health_pb2.HealthCheckRequest(service=""))
            while (await watch.read()).status != health_pb2.HealthCheckResponse.SERVING:
                pass
            calls = [
                client.speech.Synthesize(Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM))
                for _ in range(STREAMS)
            ]
            received = [0] * STREAMS
            for index, call in enumerate(calls):
                first = await call.read()
                assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
                received[index] = len(first.audio)

            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()  # an open Watch is an in-flight RPC too: it would hold the drain
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await collect(client, Request(text="Too late."))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

            for index, call in enumerate(calls):
                while isinstance(response := await call.read(), speech_pb2.SynthesizeResponse):
                    if response.WhichOneof("content") == "summary":
                        assert response.summary.audio_bytes == received[index]  # whole, not cut
                        break
                    received[index] += len(response.audio)
                else:
                    raise AssertionError(f"stream {index} ended without its summary")
                assert await call.code() == grpc.StatusCode.OK
        code = await asyncio.to_thread(server.wait)  # the one SIGTERM is enough
    finally:
        server.kill()
    assert code == 0, server.output()
    assert "draining" in server.output() and "stopped" in server.output()


async def test_a_second_signal_during_the_drain_cancels_streams_and_exits_at_once() -> None:
    server = Process(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pool-max-size",
            "2",
            "--drain-grace-s",
            "600",  # the test's own timeout fails long before this grace would end
            "--dev-upstream-rtf",
            "1.0",  # real-time pacing: ~minutes of audio, still streaming when the signals come
        ],
        child_env(),
    )
    address = await asyncio.to_thread(server.start, "voxgate listening on ")
    try:
        async with Client(address) as client, grpc.aio.insecure_channel(address) as probe:
            watch = health_pb2_grpc.HealthStub(probe).Watch(health_pb2.HealthCheckRequest(service=""))
            while (await watch.read()).status != health_pb2.HealthCheckResponse.SERVING:
                pass
            call = client.speech.Synthesize(
                Request(text=" ".join([TEXT] * 40), format=speech_pb2.AUDIO_FORMAT_PCM)
            )
            first = await call.read()
            assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio

            assert server.proc is not None
            server.proc.send_signal(signal.SIGINT)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            server.proc.send_signal(signal.SIGINT)  # the drain has begun: this one stops at once

            await assert_cut_with_what_it_delivered(call, len(first.audio))
        code = await asyncio.to_thread(server.wait, 30)  # far less than the 600 s grace
    finally:
        server.kill()
    assert code == 0, server.output()
    assert "stopping now: cancelling in-flight calls" in server.output()
    assert "stopped" in server.output()


async def assert_cut_with_what_it_delivered(call: Any, received: int) -> None:
    """The stream ends UNAVAILABLE saying how much audio was delivered, as any interrupted stream."""
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        while isinstance(response := await call.read(), speech_pb2.SynthesizeResponse):
            assert response.WhichOneof("content") != "summary", "the stream ran to its end"
            received += len(response.audio)
    assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
    details = cut.value.details() or ""
    assert details.startswith(f"audio stream interrupted after {received} bytes"), details
    assert details.endswith("server shutting down now; retry on another instance"), details
    assert (MD_AUDIO_BYTES_SENT, str(received)) in tuple(cut.value.trailing_metadata() or ())


async def test_streams_still_running_when_the_grace_ends_say_how_much_audio_they_got() -> None:
    server = Process(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pool-max-size",
            "2",
            "--drain-grace-s",
            "1",
            "--dev-upstream-rtf",
            "1.0",  # real-time pacing: minutes of audio, far longer than the grace
        ],
        child_env(),
    )
    address = await asyncio.to_thread(server.start, "voxgate listening on ")
    try:
        async with Client(address) as client, grpc.aio.insecure_channel(address) as probe:
            watch = health_pb2_grpc.HealthStub(probe).Watch(health_pb2.HealthCheckRequest(service=""))
            while (await watch.read()).status != health_pb2.HealthCheckResponse.SERVING:
                pass
            watch.cancel()
            call = client.speech.Synthesize(
                Request(text=" ".join([TEXT] * 40), format=speech_pb2.AUDIO_FORMAT_PCM)
            )
            first = await call.read()
            assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            await assert_cut_with_what_it_delivered(call, len(first.audio))
        code = await asyncio.to_thread(server.wait, 30)
    finally:
        server.kill()
    assert code == 0, server.output()
