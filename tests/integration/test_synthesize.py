"""Synthesize end to end: real gateway, real embedded upstream, real gRPC client."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from audio_checks import pcm_rms, pcm_seconds, read_mp3, read_wav
from harness import TEXT, Request, collect, gateway_settings, running_gateway
from voxgate.app import App
from voxgate.client import Client, patch_wav_sizes
from voxgate.rpc.errors import MD_AUDIO_BYTES_SENT, MD_UPSTREAM_CODE
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream

SENTENCES = 2
# espeak-ng speaks ~175 words per minute: 12 words take a few seconds, not milliseconds or minutes.
PLAUSIBLE_SECONDS = (2.0, 12.0)
SILENCE_RMS = 100.0  # of 32768: anything quieter is silence or near it


def details(error: grpc.aio.AioRpcError) -> str:
    return error.details() or ""


# --- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [8000, 22050, 48000])
async def test_pcm_is_speech_of_plausible_duration(client: Client, sample_rate: int) -> None:
    audio, summary = await collect(
        client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=sample_rate)
    )
    assert PLAUSIBLE_SECONDS[0] < pcm_seconds(audio, sample_rate) < PLAUSIBLE_SECONDS[1]
    assert pcm_rms(audio) > SILENCE_RMS
    assert summary.sample_rate == sample_rate and summary.format == speech_pb2.AUDIO_FORMAT_PCM


async def test_wav_is_a_valid_file_once_its_sizes_are_patched(client: Client) -> None:
    audio, summary = await collect(
        client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_WAV, sample_rate=16000)
    )
    assert audio[:4] == b"RIFF" and audio[8:16] == b"WAVEfmt "
    sink = io.BytesIO(audio)
    patch_wav_sizes(sink, len(audio))
    wav = read_wav(sink.getvalue())
    assert (wav.sample_rate, wav.channels, wav.sample_width) == (16000, 1, 2)
    assert PLAUSIBLE_SECONDS[0] < wav.seconds < PLAUSIBLE_SECONDS[1]
    assert pcm_rms(wav.pcm) > SILENCE_RMS
    assert summary.audio_bytes == len(audio)


async def test_mp3_is_a_stream_of_valid_frames(client: Client) -> None:
    audio, _ = await collect(
        client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_MP3, sample_rate=24000)
    )
    mp3 = read_mp3(audio)
    assert mp3.sample_rate == 24000
    assert PLAUSIBLE_SECONDS[0] < mp3.seconds < PLAUSIBLE_SECONDS[1] + 1
    assert mp3.distinct_frames > mp3.frames // 2  # silence encodes to the same frame over and over


async def test_defaults_are_wav_at_22050(client: Client) -> None:
    audio, summary = await collect(client, Request(text="Defaults."))
    assert audio[:4] == b"RIFF"
    assert (summary.format, summary.sample_rate) == (speech_pb2.AUDIO_FORMAT_WAV, 22050)


async def test_audio_arrives_in_chunks_then_one_summary(client: Client) -> None:
    items = [item async for item in client.stream(Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM))]
    *chunks, summary = items
    assert isinstance(summary, speech_pb2.SynthesisSummary)
    assert all(isinstance(chunk, bytes) and chunk for chunk in chunks)
    assert len(chunks) > SENTENCES  # forwarded frame by frame, not one buffered clip
    assert summary.audio_chunks == len(chunks)
    assert summary.audio_bytes == sum(len(chunk) for chunk in chunks if isinstance(chunk, bytes))
    assert len(summary.task_id) == 32 and summary.request_id
    assert summary.characters == len(TEXT)
    assert summary.attempts == 1
    assert 0 < summary.upstream_first_packet_delay_ms <= summary.first_packet_delay_ms


# --- the pool ----------------------------------------------------------------------------------


async def test_fifty_concurrent_calls_on_a_pool_of_eight_reuse_connections(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    request = Request(text="Concurrency is fine.", format=speech_pb2.AUDIO_FORMAT_PCM)
    results = await asyncio.gather(*(collect(client, request) for _ in range(50)))
    assert all(pcm_rms(audio) > SILENCE_RMS for audio, _ in results)
    stats = gateway.pool.stats()
    assert stats.leases == 50
    assert stats.reuse_ratio > 0.9
    assert upstream.stats()["connections_opened"] == 8  # the prewarmed ones, nothing more
    assert sum(summary.connection_reused for _, summary in results) == stats.reused_leases


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "a" * 20_001}, "text"),
        ({"text": "字" * 10_001}, "text"),  # CJK counts twice
        ({"format": 99}, "format"),
        ({"sample_rate": 11025}, "sample_rate"),
        ({"format": speech_pb2.AUDIO_FORMAT_OPUS, "sample_rate": 22050}, "sample_rate"),
        ({"volume": 101}, "volume"),
        ({"rate": 0.25}, "rate"),
        ({"pitch": 2.5}, "pitch"),
        ({"seed": 70000}, "seed"),
        ({"bit_rate": 64}, "bit_rate"),
        ({"voice": "no spaces please"}, "voice"),
        ({"model": "../etc"}, "model"),
        ({"instruction": "x" * 101}, "instruction"),
        ({"language_hints": ["english!"]}, "language_hints[0]"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    client: Client, request_fields: dict[str, Any], field: str
) -> None:
    fields = {"text": "Valid text.", **request_fields}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(**fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(info.value).startswith(f"{field}: ")
    audio, _ = await collect(client, Request(text="Still serving."))  # and the server carries on
    assert audio


async def test_upstream_rejection_keeps_the_upstream_code(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(text="Who is speaking?", voice="nobody_v9"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "418" in details(info.value)
    trailing = dict(info.value.trailing_metadata() or ())
    assert trailing[MD_UPSTREAM_CODE] == "InvalidParameter"


# --- upstream faults ----------------------------------------------------------------------


async def test_drop_before_first_audio_is_retried_on_another_connection(
    client: Client, set_faults: Callable[..., None]
) -> None:
    set_faults(drop_after_bytes=0, times=1)
    audio, summary = await collect(client, Request(text="Retry me.", format=speech_pb2.AUDIO_FORMAT_PCM))
    assert summary.attempts == 2
    assert pcm_rms(audio) > SILENCE_RMS


async def test_drop_after_audio_fails_loudly_with_the_bytes_delivered(
    client: Client, set_faults: Callable[..., None]
) -> None:
    set_faults(drop_after_bytes=8000, times=1)
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in client.stream(Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM)):
            assert isinstance(item, bytes), "a summary after a dropped stream would hide the truncation"
            received += len(item)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"interrupted after {received} bytes" in details(info.value)
    assert dict(info.value.trailing_metadata() or ())[MD_AUDIO_BYTES_SENT] == str(received)


async def test_a_file_of_a_failed_synthesis_is_removed(
    client: Client, set_faults: Callable[..., None], tmp_path: Path
) -> None:
    set_faults(drop_after_bytes=8000, times=1)
    path = tmp_path / "clip.wav"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.synthesize_to_file(Request(text=TEXT), path)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not path.exists(), "a short clip must not stay behind looking whole"


async def test_throttling_that_persists_is_resource_exhausted(
    client: Client, set_faults: Callable[..., None]
) -> None:
    set_faults(throttle=True)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(text="Too many."))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "after 3 attempts" in details(info.value)


async def test_rejected_credentials_are_failed_precondition(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, api_key="sk-wrong", VOXGATE_POOL_MAX_SIZE=1)
    async with running_gateway(settings, wait_ready=False) as app, Client(app.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client, Request(text="Let me in."))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "DASHSCOPE_API_KEY" in details(info.value)
    assert "sk-wrong" not in details(info.value)
