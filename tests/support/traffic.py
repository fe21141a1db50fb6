"""Traffic that makes a running voxgate write every series its dashboard and alerts read.

Against a gateway with a pool of one connection and ``VOXGATE_POOL_ACQUIRE_TIMEOUT_S`` short: a
synthesis, a second one on the reused connection, a generation (tokens, time to first token), a
request refused as INVALID_ARGUMENT, a stream cancelled mid-way (its connection is evicted as
``discarded``), and a call that waits past the acquire timeout behind a held stream (a refused
lease). The upstream must pace audio at real time so the held stream is still running.
"""

from __future__ import annotations

import asyncio

import grpc

from harness import TEXT, Request
from voxgate.client import Client
from voxgate.generation.v1 import generation_pb2
from voxgate.speech.v1 import speech_pb2

PCM = speech_pb2.AUDIO_FORMAT_PCM
ACQUIRE_TIMEOUT_S = 0.2
GATEWAY_ENV: dict[str, object] = {
    "VOXGATE_POOL_MAX_SIZE": 1,
    "VOXGATE_POOL_ACQUIRE_TIMEOUT_S": ACQUIRE_TIMEOUT_S,
    # Salvage off: the cancelled stream's connection is then evicted (``discarded``), so the
    # evictions series exists; with salvage on it would be read to its end and kept.
    "VOXGATE_SALVAGE_TIMEOUT_S": 0,
}


async def every_series(address: str) -> None:
    async with Client(address) as client:
        for _ in range(2):  # the second lease reuses the first one's connection
            replies = [reply async for reply in client.speech.Synthesize(Request(text="Hi.", format=PCM))]
            assert replies[-1].HasField("summary")
        request = generation_pb2.GenerateStreamRequest(
            messages=[generation_pb2.Message(role="user", content="Say hello")]
        )
        assert [piece async for piece in client.generate_stream(request, timeout_s=30)]
        try:
            async for _ in client.speech.Synthesize(Request(text="", format=PCM)):
                pass
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        else:
            raise AssertionError("an empty text was accepted")
        # One stream holds the only connection; a second waits past the acquire timeout.
        holder = client.speech.Synthesize(Request(text=TEXT, format=PCM))
        first = await holder.read()
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
        try:
            async for _ in client.speech.Synthesize(Request(text="Waiting.", format=PCM)):
                pass
        except grpc.aio.AioRpcError as error:
            assert error.code() != grpc.StatusCode.OK
        else:
            raise AssertionError("a call was served while the only connection was held")
        holder.cancel()  # the unfinished task's connection is discarded
        await asyncio.sleep(0)
