"""``min_chunk_ms``: fewer, larger audio messages, never a later first byte.

Each gRPC message costs the server a write (a profile at 100 streams put a fifth of the samples on
``context.write``), and the upstream sends audio in many small frames. With ``min_chunk_ms`` set, a
reader task takes frames off the upstream connection as they come while the writer sends: the first
frame goes out alone the moment it arrives, and each later message joins the frames *already
received* up to the requested duration. Nothing ever waits for a frame still to come, so coalescing
only happens when frames arrive faster than the client takes them; the bytes are the same, in the
same order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Final

from voxgate.speech.protocol import SynthesisParams
from voxgate.speech.v1 import speech_pb2
from voxgate.speech.validation import InvalidRequest

MAX_MIN_CHUNK_MS: Final = 1000
_UNCOMPRESSED: Final = ("pcm", "wav")
_BYTES_PER_SAMPLE: Final = 2  # 16-bit mono


def min_chunk_bytes(request: speech_pb2.SynthesizeRequest, params: SynthesisParams) -> int | None:
    """Bytes of ``request.min_chunk_ms`` of audio, or None when unset. Raises :class:`InvalidRequest`."""
    if not request.HasField("min_chunk_ms"):
        return None
    ms = request.min_chunk_ms
    if not 1 <= ms <= MAX_MIN_CHUNK_MS:
        raise InvalidRequest("min_chunk_ms", f"{ms} is outside [1, {MAX_MIN_CHUNK_MS}]")
    if params.format not in _UNCOMPRESSED:
        raise InvalidRequest(
            "min_chunk_ms",
            "is only valid with AUDIO_FORMAT_PCM or AUDIO_FORMAT_WAV (compressed audio has no fixed"
            " bytes per millisecond)",
        )
    return params.sample_rate * _BYTES_PER_SAMPLE * ms // 1000


def coalesced(stream: AsyncGenerator[bytes, None], min_bytes: int | None) -> AsyncGenerator[bytes, None]:
    """``stream`` itself without ``min_bytes``; else its chunks joined as the module docstring says.

    Close the result (``contextlib.aclosing``): that stops the reader and closes ``stream``.
    """
    if min_bytes is None:
        return stream
    return _coalescing(stream, min_bytes)


class _End:
    """The reader's last item: the stream ended, normally or with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


async def _coalescing(stream: AsyncGenerator[bytes, None], min_bytes: int) -> AsyncGenerator[bytes, None]:
    received: asyncio.Queue[bytes | _End] = asyncio.Queue()

    async def read() -> None:
        try:
            async for chunk in stream:
                received.put_nowait(chunk)
        except Exception as exc:  # handed to the writer, which raises it after the audio before it
            received.put_nowait(_End(exc))
        else:
            received.put_nowait(_End(None))

    reader = asyncio.create_task(read())
    try:
        first = True
        while True:
            item = await received.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            if first:
                first = False
                yield item
                continue
            parts, size, end = [item], len(item), None
            while size < min_bytes and not received.empty():
                more = received.get_nowait()
                if isinstance(more, _End):
                    end = more
                    break
                parts.append(more)
                size += len(more)
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            if end is not None:
                if end.error is not None:
                    raise end.error
                return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stream.aclose()
