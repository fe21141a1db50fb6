"""The abuse mix of ``make soak``: what hostile or careless callers do, beside the normal traffic.

Four kinds run at once until told to stop, each on its own channel, each counting how its calls
ended: stalled readers (read one chunk, then nothing, past the write-stall limit), cancellers
(cancel after the first chunk), bursts (hundreds of calls opened at once) and oversized requests
(4 MB and 1 MB texts). The normal traffic's first-packet delays, with and without the mix, are
what the soak reports; a refusal of a normal call must be an explicit one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field

import grpc

from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2

PCM = speech_pb2.AUDIO_FORMAT_PCM
LONG_TEXT = " ".join(
    ["The stalled reader asks for a very long clip and stops reading after one chunk."] * 150
)
CANCEL_TEXT = "Hello world. This is voxgate, speaking through a warm pool of connections."


@dataclass
class AbuseBooks:
    """How the abusers' calls ended: ``kind -> status -> count``."""

    outcomes: dict[str, Counter[str]] = field(default_factory=dict)

    def note(self, kind: str, outcome: str) -> None:
        self.outcomes.setdefault(kind, Counter())[outcome] += 1


def _outcome(exc: grpc.aio.AioRpcError) -> str:
    refused = dict(exc.trailing_metadata() or ()).get("voxgate-refused")
    return f"{exc.code().name}{f' ({refused})' if refused else ''}"


async def _stalled_reader(client: Client, hold_s: float, books: AbuseBooks, stop: asyncio.Event) -> None:
    while not stop.is_set():
        call = client.speech.Synthesize(
            speech_pb2.SynthesizeRequest(text=LONG_TEXT, format=PCM, sample_rate=48000)
        )
        try:
            await call.read()
            # The abuse itself: hold the stream without reading (not a synchronisation).
            await asyncio.wait_for(stop.wait(), hold_s)
        except TimeoutError:
            pass
        except grpc.aio.AioRpcError as exc:
            books.note("stalled reader", _outcome(exc))
            continue
        # Read again: the buffered audio, then how the server ended the call.
        try:
            while await call.read() is not grpc.aio.EOF:
                pass
            books.note("stalled reader", "OK")
        except grpc.aio.AioRpcError as exc:
            books.note("stalled reader", _outcome(exc))


async def _canceller(client: Client, books: AbuseBooks, stop: asyncio.Event) -> None:
    while not stop.is_set():
        call = client.speech.Synthesize(speech_pb2.SynthesizeRequest(text=CANCEL_TEXT, format=PCM))
        try:
            await call.read()
            call.cancel()
            books.note("canceller", "cancelled after the first chunk")
        except grpc.aio.AioRpcError as exc:
            books.note("canceller", _outcome(exc))


async def _burst(client: Client, size: int, pause_s: float, books: AbuseBooks, stop: asyncio.Event) -> None:
    async def one() -> None:
        try:
            async for _ in client.speech.Synthesize(speech_pb2.SynthesizeRequest(text="Burst.", format=PCM)):
                pass
            books.note("burst", "OK")
        except grpc.aio.AioRpcError as exc:
            books.note("burst", _outcome(exc))

    while not stop.is_set():
        await asyncio.gather(*(one() for _ in range(size)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause_s)


async def _oversized(client: Client, books: AbuseBooks, stop: asyncio.Event) -> None:
    texts = ("x" * (4 * 1024 * 1024), "x" * (1024 * 1024))
    while not stop.is_set():
        for text in texts:
            try:
                async for _ in client.speech.Synthesize(speech_pb2.SynthesizeRequest(text=text)):
                    pass
                books.note("oversized", "OK")
            except grpc.aio.AioRpcError as exc:
                books.note("oversized", _outcome(exc))


async def run_abuse(address: str, books: AbuseBooks, stop: asyncio.Event, *, stall_hold_s: float) -> None:
    """Run the mix against ``address`` until ``stop`` is set."""
    clients = [Client(address) for _ in range(4)]
    try:
        await asyncio.gather(
            *(_stalled_reader(clients[0], stall_hold_s, books, stop) for _ in range(2)),
            *(_canceller(clients[1], books, stop) for _ in range(4)),
            _burst(clients[2], 400, 2.0, books, stop),
            *(_oversized(clients[3], books, stop) for _ in range(2)),
        )
    finally:
        for client in clients:
            await client.close()
