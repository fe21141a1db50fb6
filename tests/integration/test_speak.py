"""Speak end to end on local-echo: the model's answer streamed as text and as speech at once."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from audio_checks import pcm_rms, pcm_seconds
from harness import API_KEY, pool_back_to_size
from voxgate.app import App
from voxgate.client import Client
from voxgate.generation.v1 import generation_pb2 as gen
from voxgate.rpc.errors import MD_AUDIO_BYTES_SENT, MD_TEXT_CHARS_SENT
from voxgate.speech.v1 import speech_pb2
from voxgate.voice.servicer import MD_FAILED_HALF
from voxgate.voice.v1 import voice_pb2
from voxgate_dev import DevUpstream, Faults, GenerationFaults, UpstreamOptions

# local-echo answers "Hello! You said: <prompt>": a short first sentence, then a long second one
# still being written (a token every TOKEN_INTERVAL_MS, a model's pace) while the first is spoken.
PROMPT = (
    "tell me, in a few words, how a warm pool of connections makes the first audio of a long"
    " answer arrive sooner than a cold connect would, and why the pool pings its idle sockets;"
    " then say what happens when the upstream goes quiet for a while in the middle of a task,"
    " and how the gateway tells a slow reader from a dead peer"
)
SILENCE_RMS = 100.0
TOKEN_INTERVAL_MS = 20.0


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    return UpstreamOptions(api_key=API_KEY, token_interval_ms=TOKEN_INTERVAL_MS)


def request(**speech: Any) -> voice_pb2.SpeakRequest:
    return voice_pb2.SpeakRequest(
        model="local-echo",
        messages=[gen.Message(role="user", content=PROMPT)],
        speech=speech_pb2.SynthesisConfig(format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=16000, **speech),
    )


def trailing(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {key: str(value) for key, value in (error.trailing_metadata() or ())}


async def test_first_audio_arrives_before_the_last_text_delta(client: Client) -> None:
    first_audio_at = 0.0
    last_text_at = 0.0
    deltas: list[str] = []
    audio = bytearray()
    summary = None
    async for item in client.speak(request(), timeout_s=60):
        if isinstance(item, str):
            deltas.append(item)
            last_text_at = time.perf_counter()
        elif isinstance(item, bytes):
            if not audio:
                first_audio_at = time.perf_counter()
            audio += item
        else:
            summary = item
    assert summary is not None and audio and deltas
    assert first_audio_at < last_text_at, (
        f"first audio {summary.time_to_first_audio_ms:.0f} ms after the call,"
        f" {(last_text_at - first_audio_at) * 1000:.0f} ms before the last delta"
    )
    assert 0 < summary.time_to_first_token_ms < summary.time_to_first_audio_ms
    assert summary.characters == len("".join(deltas))
    assert summary.audio_bytes == len(audio)
    assert summary.usage.output_tokens > 0 and summary.finish_reason == "stop"
    assert 1 < summary.speech_pieces < len(deltas)  # cut at clauses: fewer pieces than tokens
    assert pcm_seconds(bytes(audio), 16000) / len("".join(deltas)) > 0.03
    assert pcm_rms(bytes(audio)) > SILENCE_RMS


async def test_text_deltas_joined_equal_the_generate_answer(client: Client) -> None:
    texts = [item async for item in client.speak(request(), timeout_s=60) if isinstance(item, str)]
    answer = await client.generate(
        gen.GenerateRequest(model="local-echo", messages=[gen.Message(role="user", content=PROMPT)]),
        timeout_s=30,
    )
    assert "".join(texts) == answer.text


async def test_bad_speech_config_is_invalid_argument_naming_the_field(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in client.speak(request(volume=101), timeout_s=30):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speech.volume" in (info.value.details() or "")


async def test_generation_failure_mid_answer_ends_the_call_naming_the_half(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(generation=GenerationFaults(error_after_tokens=12), times=1))
    texts: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in client.speak(request(), timeout_s=60):
            if isinstance(item, str):
                texts.append(item)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    details = info.value.details() or ""
    assert details.startswith("generation failed:")
    chars = len("".join(texts))
    assert f"delivered {chars} characters of text" in details
    metadata = trailing(info.value)
    assert metadata[MD_FAILED_HALF] == "generation"
    assert metadata[MD_TEXT_CHARS_SENT] == str(chars)
    await pool_back_to_size(gateway)  # the speech task was abandoned; its connection replaced


async def test_speech_failure_mid_audio_ends_the_call_naming_the_half(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(fail_after_bytes=4000, fail_code="InternalError", times=1))
    audio = 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in client.speak(request(), timeout_s=60):
            if isinstance(item, bytes):
                audio += len(item)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    details = info.value.details() or ""
    assert details.startswith("speech failed: upstream task failed: InternalError")
    assert f"and {audio} bytes of audio" in details and audio > 0
    metadata = trailing(info.value)
    assert metadata[MD_FAILED_HALF] == "speech"
    assert metadata[MD_AUDIO_BYTES_SENT] == str(audio)
    await pool_back_to_size(gateway)


async def test_speech_failure_before_audio_is_retried_with_the_text_so_far(
    client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(fail_after_bytes=0, fail_code="InternalError", times=1))
    items = [item async for item in client.speak(request(), timeout_s=60)]
    summary = items[-1]
    assert isinstance(summary, voice_pb2.SpeakSummary)
    text = "".join(item for item in items if isinstance(item, str))
    assert summary.characters == len(text)
    assert sum(len(item) for item in items if isinstance(item, bytes)) == summary.audio_bytes > 0


async def test_an_empty_answer_ends_with_a_summary_and_no_audio(client: Client) -> None:
    empty = request()
    empty.sampling.stop.append("Hello")  # local-echo's answer starts with it: nothing is left
    items = [item async for item in client.speak(empty, timeout_s=30)]
    [summary] = items
    assert isinstance(summary, voice_pb2.SpeakSummary)
    assert summary.audio_bytes == 0 and summary.text_chars == 0 and summary.finish_reason == "stop"
