"""``voxgate.speech.coalesce``: joining frames already received, never waiting for one to come.

The upstream here is an async generator the test releases frame by frame: a frame is produced only
after the test has received what came before, so any wait for a frame still to come would hang
(and fail on the timeout), and frames released together must come out joined.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from voxgate.speech.coalesce import coalesced, min_chunk_bytes
from voxgate.speech.protocol import SynthesisParams
from voxgate.speech.v1 import speech_pb2
from voxgate.speech.validation import InvalidRequest

FRAME = 100


class Upstream:
    """Yields the frames put into ``release`` (None ends it; an exception is raised)."""

    def __init__(self) -> None:
        self.release: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.closed = False

    async def frames(self) -> AsyncGenerator[bytes, None]:
        try:
            while (frame := await self.release.get()) is not None:
                if isinstance(frame, BaseException):
                    raise frame
                yield frame
        finally:
            self.closed = True


def frame(n: int) -> bytes:
    return bytes([n]) * FRAME


async def next_chunk(stream: AsyncGenerator[bytes, None]) -> bytes:
    return await asyncio.wait_for(anext(stream), timeout=5)


async def settle() -> None:
    """Let the reader task move every released frame into its queue (it needs a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_each_chunk_goes_out_without_waiting_for_the_next_frame() -> None:
    upstream = Upstream()
    stream = coalesced(upstream.frames(), min_bytes=10 * FRAME)
    for n in range(5):
        upstream.release.put_nowait(frame(n))  # one frame at a time: nothing to join
        assert await next_chunk(stream) == frame(n)
    upstream.release.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await next_chunk(stream)
    assert upstream.closed


async def test_frames_already_received_are_joined_up_to_the_size_and_the_first_goes_alone() -> None:
    upstream = Upstream()
    stream = coalesced(upstream.frames(), min_bytes=3 * FRAME)
    for n in range(8):
        upstream.release.put_nowait(frame(n))
    upstream.release.put_nowait(None)
    await settle()
    chunks = [chunk async for chunk in stream]
    assert chunks == [frame(0), frame(1) + frame(2) + frame(3), frame(4) + frame(5) + frame(6), frame(7)]


async def test_an_upstream_error_comes_after_the_audio_before_it() -> None:
    upstream = Upstream()
    stream = coalesced(upstream.frames(), min_bytes=10 * FRAME)
    for item in (frame(0), frame(1), frame(2), ConnectionError("upstream gone")):
        upstream.release.put_nowait(item)
    await settle()
    assert await next_chunk(stream) == frame(0)
    assert await next_chunk(stream) == frame(1) + frame(2)
    with pytest.raises(ConnectionError, match="upstream gone"):
        await next_chunk(stream)


async def test_closing_early_stops_the_reader_and_closes_the_upstream() -> None:
    upstream = Upstream()
    stream = coalesced(upstream.frames(), min_bytes=10 * FRAME)
    upstream.release.put_nowait(frame(0))
    assert await next_chunk(stream) == frame(0)
    await stream.aclose()  # as a cancelled write does, through contextlib.aclosing
    assert upstream.closed


async def test_without_min_chunk_the_stream_is_passed_through() -> None:
    upstream = Upstream()
    frames = upstream.frames()
    assert coalesced(frames, None) is frames


@pytest.mark.parametrize(
    ("fmt", "rate", "ms", "expected"),
    [("pcm", 22050, 200, 8820), ("wav", 16000, 20, 640), ("pcm", 48000, 1000, 96000)],
)
def test_min_chunk_ms_is_bytes_of_16_bit_mono_audio(fmt: str, rate: int, ms: int, expected: int) -> None:
    params = SynthesisParams(model="m", voice="v", format=fmt, sample_rate=rate)
    assert min_chunk_bytes(speech_pb2.SynthesizeRequest(min_chunk_ms=ms), params) == expected
    assert min_chunk_bytes(speech_pb2.SynthesizeRequest(), params) is None


def test_compressed_formats_refuse_min_chunk_ms() -> None:
    params = SynthesisParams(model="m", voice="v", format="opus", sample_rate=48000)
    with pytest.raises(InvalidRequest, match="min_chunk_ms"):
        min_chunk_bytes(speech_pb2.SynthesizeRequest(min_chunk_ms=100), params)
