"""SynthesizeStream end to end: text in pieces, audio back while the text is still coming."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from audio_checks import pcm_rms, pcm_seconds, read_wav
from harness import API_KEY, Request, collect, gateway_settings, pool_back_to_size, running_gateway
from voxgate.app import App
from voxgate.client import Client, patch_wav_sizes
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

# A voice agent's answer as a model writes it: a short first sentence, then a longer tail.
PIECES = [
    "Sure. ",
    "The weather ",
    "today is ",
    "mild, ",
    "with a light ",
    "breeze from ",
    "the west ",
    "and clear ",
    "skies ",
    "until the ",
    "evening.",
]
JOINED = "".join(PIECES)
PIECE_INTERVAL_S = 0.150
SECONDS_PER_CHAR = (0.03, 0.2)  # espeak-ng at ~175 wpm speaks ~0.07 s per character
SILENCE_RMS = 100.0
Config = speech_pb2.SynthesisConfig


async def paced(
    pieces: list[str], sent_at: list[float], interval_s: float = PIECE_INTERVAL_S
) -> AsyncIterator[str]:
    """The caller's input pattern: one piece every ``interval_s``, each send time recorded."""
    for index, piece in enumerate(pieces):
        if index:
            await asyncio.sleep(interval_s)
        sent_at.append(time.perf_counter())
        yield piece


async def then_hold(pieces: list[str]) -> AsyncIterator[str]:
    """Send ``pieces``, then keep the request side open without writing (until the call ends).

    A test of a rejection must not write after it: grpcio's asyncio client reports a write that
    fails because the server already ended the call as INTERNAL "Internal error from Core",
    hiding the server's status (grpc/grpc issue 36066; docs/api.md#synthesizestream)."""
    for piece in pieces:
        yield piece
    await asyncio.Event().wait()


async def stream_all(
    client: Client, config: speech_pb2.SynthesisConfig, pieces: AsyncIterator[str]
) -> tuple[bytes, speech_pb2.SynthesisSummary, float]:
    """All audio, the summary, and when (perf_counter) the first audio chunk arrived."""
    audio = bytearray()
    first_audio_at = 0.0
    summary = None
    async for item in client.stream_text(config, pieces, timeout_s=30):
        if isinstance(item, bytes):
            if not audio:
                first_audio_at = time.perf_counter()
            audio += item
        else:
            summary = item
    assert summary is not None
    return bytes(audio), summary, first_audio_at


async def test_audio_arrives_before_the_last_piece_is_sent(client: Client) -> None:
    sent_at: list[float] = []
    config = Config(format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=16000)
    audio, summary, first_audio_at = await stream_all(client, config, paced(PIECES, sent_at))
    assert len(sent_at) == len(PIECES)
    assert first_audio_at < sent_at[-1], (
        f"first audio {first_audio_at - sent_at[0]:.3f}s after the first piece,"
        f" last piece sent at {sent_at[-1] - sent_at[0]:.3f}s"
    )
    assert summary.text_pieces == len(PIECES)
    assert 0 < summary.text_to_first_audio_ms < (sent_at[-1] - sent_at[0]) * 1000
    assert summary.audio_bytes == len(audio) and summary.characters == len(JOINED)
    assert pcm_rms(audio) > SILENCE_RMS


async def test_stream_audio_matches_synthesize_of_the_joined_text(client: Client) -> None:
    config = Config(format=speech_pb2.AUDIO_FORMAT_WAV, sample_rate=16000)
    streamed, stream_summary, _ = await stream_all(client, config, paced(PIECES, []))
    whole, whole_summary = await collect(
        client, Request(text=JOINED, format=speech_pb2.AUDIO_FORMAT_WAV, sample_rate=16000)
    )
    wavs = []
    for audio in (streamed, whole):
        assert audio[:4] == b"RIFF"
        sink = io.BytesIO(audio)
        patch_wav_sizes(sink, len(audio))
        wavs.append(read_wav(sink.getvalue()))
    stream_wav, whole_wav = wavs
    assert (stream_wav.sample_rate, stream_wav.channels, stream_wav.sample_width) == (16000, 1, 2)
    assert (stream_summary.format, stream_summary.sample_rate) == (
        whole_summary.format,
        whole_summary.sample_rate,
    )
    assert stream_summary.characters == whole_summary.characters == len(JOINED)
    per_char = stream_wav.seconds / len(JOINED)
    assert SECONDS_PER_CHAR[0] < per_char < SECONDS_PER_CHAR[1]
    # The upstream cuts the same sentences either way: the same speech, give or take its pauses.
    assert 0.8 < stream_wav.seconds / whole_wav.seconds < 1.25
    assert pcm_rms(stream_wav.pcm) > SILENCE_RMS


async def test_pieces_already_queued_go_upstream_together(client: Client, upstream: DevUpstream) -> None:
    async def burst() -> AsyncIterator[str]:
        for piece in PIECES:
            yield piece

    audio, summary, _ = await stream_all(client, Config(format=speech_pb2.AUDIO_FORMAT_PCM), burst())
    assert summary.text_pieces == len(PIECES) and summary.characters == len(JOINED)
    assert pcm_seconds(audio, 22050) / len(JOINED) > SECONDS_PER_CHAR[0]


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (Config(sample_rate=12345), "config.sample_rate"),
        (Config(enable_ssml=True), "config.enable_ssml"),
        (Config(bit_rate=64), "config.bit_rate"),
    ],
)
async def test_bad_config_is_invalid_argument_naming_the_field(
    client: Client, config: speech_pb2.SynthesisConfig, named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream_all(client, config, then_hold([]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (info.value.details() or "")


async def test_first_message_must_be_config(client: Client) -> None:
    async def requests() -> AsyncIterator[speech_pb2.SynthesizeStreamRequest]:
        yield speech_pb2.SynthesizeStreamRequest(text="Hello.")

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in client.speech.SynthesizeStream(requests(), timeout=10):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message must carry config" in (info.value.details() or "")


async def test_a_stream_without_text_is_invalid_argument(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream_all(client, Config(), paced(["", "  "], [], interval_s=0))
    # (closing the request side is what fails it: nothing is written after the rejection)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sent no text" in (info.value.details() or "")


async def test_too_many_pieces_is_invalid_argument_naming_the_limit(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, VOXGATE_STREAM_MAX_PIECES=3)
    async with running_gateway(settings) as app, Client(app.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stream_all(client, Config(), then_hold(PIECES[:4]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "VOXGATE_STREAM_MAX_PIECES" in (info.value.details() or "")
        await pool_back_to_size(app)


async def test_idle_stream_ends_out_of_range_before_the_upstream_gap_limit() -> None:
    # The upstream's gap limit scaled down from 23 s to 2 s, voxgate's idle limit to 0.5 s:
    # voxgate must end the stream itself, with its own status, before the upstream would.
    upstream = DevUpstream(UpstreamOptions(api_key=API_KEY, text_gap_timeout_s=2.0))
    await upstream.start()
    try:
        settings = gateway_settings(upstream, VOXGATE_STREAM_IDLE_TIMEOUT_S=0.5)
        async with running_gateway(settings) as app, Client(app.address) as client:
            never = asyncio.Event()

            async def stalls() -> AsyncIterator[str]:
                yield "Hello there, "
                await never.wait()  # the caller never sends the rest, nor closes its side
                yield "never sent"

            started = time.perf_counter()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stream_all(client, Config(), stalls())
            elapsed_s = time.perf_counter() - started
            assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
            details = info.value.details() or ""
            assert "no piece for 0.5s" in details and "VOXGATE_STREAM_IDLE_TIMEOUT_S" in details
            assert elapsed_s < 2.0
            assert upstream.stats()["text_gap_timeouts"] == 0
            await pool_back_to_size(app)
    finally:
        await upstream.stop()


async def test_cancelled_stream_frees_its_connection(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    more = asyncio.Event()

    async def pieces() -> AsyncIterator[str]:
        yield "First sentence is here. "
        await more.wait()  # still writing when the caller hangs up
        yield "never sent"

    async def requests() -> AsyncIterator[speech_pb2.SynthesizeStreamRequest]:
        yield speech_pb2.SynthesizeStreamRequest(config=Config(format=speech_pb2.AUDIO_FORMAT_PCM))
        async for piece in pieces():
            yield speech_pb2.SynthesizeStreamRequest(text=piece)

    call = client.speech.SynthesizeStream(requests())
    first = await call.read()
    assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
    assert gateway.pool.stats().in_use == 1
    call.cancel()
    await pool_back_to_size(gateway)
    # The pool serves on: the next streams all succeed on clean connections.
    results = await asyncio.gather(
        *(
            stream_all(client, Config(format=speech_pb2.AUDIO_FORMAT_PCM), paced(["Again."], []))
            for _ in range(5)
        )
    )
    assert all(audio for audio, _, _ in results)
    assert upstream.stats()["invalid_action_errors"] == 0


async def test_failure_before_audio_is_retried_with_the_text_so_far(
    client: Client, upstream: DevUpstream
) -> None:
    # The first task fails instead of its first audio, after the first sentence's pieces went
    # upstream; the retry replays every piece received so far on a fresh connection.
    upstream.set_faults(Faults(fail_after_bytes=0, fail_code="InternalError", times=1))
    audio, summary, _ = await stream_all(
        client, Config(format=speech_pb2.AUDIO_FORMAT_PCM), paced(PIECES, [], interval_s=0.05)
    )
    assert summary.attempts == 2
    assert summary.characters == len(JOINED)
    assert pcm_seconds(audio, 22050) / len(JOINED) > SECONDS_PER_CHAR[0]


async def test_failure_after_audio_is_not_retried_and_says_what_was_delivered(
    client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(fail_after_bytes=4000, fail_code="InternalError", times=1))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        # One piece, written before any audio can exist: no write races the failure.
        await stream_all(client, Config(format=speech_pb2.AUDIO_FORMAT_PCM), then_hold([JOINED]))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "audio stream interrupted after" in (info.value.details() or "")
