"""The vendor's own SDK (dashscope 2.0.2) against the local upstream, pointed only by base URL.

The SDK is synchronous (websocket-client threads), so every SDK call runs in a worker
thread while the upstream serves in the test's event loop, and every call gets a timeout
so a bug fails the test instead of hanging it (docs/protocol.md#timing-limits: ``call()`` without a timeout
can block forever).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dashscope
import pytest
import websocket
from dashscope.audio.tts_v2 import AudioFormat, ResultCallback, SpeechSynthesizer, SpeechSynthesizerObjectPool
from dashscope.common.error import RequestFailure

from audio_checks import read_ogg_opus
from voxgate.speech.protocol import ERROR_INVALID_ACTION_RUN_TASK, ERROR_RATE_LIMITED
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

KEY = "sk-vendor-sdk-test"
MODEL = "cosyvoice-v3-flash"
VOICE = "longanyang"
TIMEOUT_MS = 10_000
TEXT = "Hello there. This is the vendor SDK talking to the local upstream."


@pytest.fixture
async def upstream() -> AsyncIterator[DevUpstream]:
    server = DevUpstream(UpstreamOptions(api_key=KEY))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def point_sdk(upstream: DevUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    # Module globals, read when a synthesizer is built; the env vars were read at import.
    monkeypatch.setattr(dashscope, "api_key", KEY)
    monkeypatch.setattr(dashscope, "base_websocket_api_url", upstream.ws_url)


@pytest.fixture(autouse=True)
def close_sdk_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Shut down every socket the SDK opened, after the test.

    websocket-client leaks the OS socket when the server closes first: its ``close()``
    returns early once ``connected`` is False, and the app's teardown drops the reference.
    The leak then surfaces as an unraisable ResourceWarning in some later test. The SDK
    pool also never closes its sockets (docs/protocol.md#the-vendor-sdks-pool). Tracking only
    observes; the SDK runs unchanged.
    """
    created: list[websocket.WebSocket] = []
    original_init = websocket.WebSocket.__init__

    def tracking_init(self: websocket.WebSocket, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(websocket.WebSocket, "__init__", tracking_init)
    yield
    for sdk_socket in created:
        sdk_socket.shutdown()  # type: ignore[no-untyped-call]  # websocket-client: untyped


class Collector(ResultCallback):
    """Records what the SDK hands to a callback, from its WebSocket thread."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio: list[bytes] = []
        self.errors: list[str] = []
        self.completed = threading.Event()

    def on_event(self, message: str) -> None:
        self.events.append(json.loads(message) if isinstance(message, str) else message)

    def on_data(self, data: bytes) -> None:
        self.audio.append(data)

    def on_complete(self) -> None:
        self.completed.set()

    def on_error(self, message: Any) -> None:
        self.errors.append(str(message))


def synthesizer(audio_format: Any, **kwargs: Any) -> Any:
    return SpeechSynthesizer(model=MODEL, voice=VOICE, format=audio_format, **kwargs)


def pcm_seconds(audio: bytes, sample_rate: int) -> float:
    return len(audio) / 2 / sample_rate


async def test_call_returns_pcm(upstream: DevUpstream) -> None:
    speaker = synthesizer(AudioFormat.PCM_16000HZ_MONO_16BIT)
    audio = await asyncio.to_thread(speaker.call, TEXT, TIMEOUT_MS)
    assert isinstance(audio, bytes)
    assert 2.0 < pcm_seconds(audio, 16000) < 10.0
    assert speaker.get_first_package_delay() > 0
    response = speaker.get_response()
    assert response["header"]["event"] == "task-finished"
    assert response["header"]["task_id"] == speaker.get_last_request_id()
    assert upstream.stats()["audio_bytes_sent"] == len(audio)


async def test_call_returns_wav() -> None:
    speaker = synthesizer(AudioFormat.WAV_16000HZ_MONO_16BIT)
    audio = await asyncio.to_thread(speaker.call, TEXT, TIMEOUT_MS)
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    assert int.from_bytes(audio[24:28], "little") == 16000
    assert audio.count(b"RIFF") == 1
    assert 2.0 < pcm_seconds(audio[44:], 16000) < 10.0


async def test_call_returns_mp3() -> None:
    speaker = synthesizer(AudioFormat.MP3_22050HZ_MONO_256KBPS)
    audio = await asyncio.to_thread(speaker.call, TEXT, TIMEOUT_MS)
    assert audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0, "starts with an MPEG frame sync"
    # 128 kbps (our fixed rate) for a few seconds of speech.
    assert 2.0 < len(audio) * 8 / 128_000 < 10.0


async def test_call_returns_ogg_opus() -> None:
    speaker = synthesizer(AudioFormat.OGG_OPUS_16KHZ_MONO_32KBPS)
    audio = await asyncio.to_thread(speaker.call, TEXT, TIMEOUT_MS)
    ogg = read_ogg_opus(audio)
    assert ogg.sample_rate == 16000
    assert 2.0 < ogg.seconds < 10.0


async def test_default_format_is_mp3() -> None:
    speaker = synthesizer(AudioFormat.DEFAULT)
    audio = await asyncio.to_thread(speaker.call, "Default format please.", TIMEOUT_MS)
    assert audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0


async def test_streaming_call_with_callback() -> None:
    collector = Collector()
    speaker = synthesizer(AudioFormat.PCM_24000HZ_MONO_16BIT, callback=collector)

    def stream() -> None:
        speaker.streaming_call("First part of a sentence, ")
        speaker.streaming_call("which now ends. And a second one")
        speaker.streaming_flush()
        speaker.streaming_call(" plus a tail without punctuation")
        speaker.streaming_complete(complete_timeout_millis=TIMEOUT_MS)

    await asyncio.to_thread(stream)
    assert collector.completed.is_set()
    assert collector.errors == []
    begins = [
        e["payload"]["output"]["original_text"]
        for e in collector.events
        if e["payload"].get("output", {}).get("type") == "sentence-begin"
    ]
    assert begins == [
        "First part of a sentence, which now ends. ",
        "And a second one",
        " plus a tail without punctuation",
    ]
    assert 2.0 < pcm_seconds(b"".join(collector.audio), 24000) < 15.0


async def test_failure_at_start_raises_request_failure(upstream: DevUpstream) -> None:
    upstream.set_faults(Faults(throttle=True))
    speaker = synthesizer(AudioFormat.PCM_16000HZ_MONO_16BIT)
    with pytest.raises(RequestFailure) as caught:
        await asyncio.to_thread(speaker.call, TEXT, TIMEOUT_MS)
    assert caught.value.name == "Throttling.RateQuota"
    assert caught.value.message == ERROR_RATE_LIMITED
    assert caught.value.request_id == speaker.get_last_request_id()


async def test_failure_mid_task_raises_instead_of_partial_audio(upstream: DevUpstream) -> None:
    upstream.set_faults(Faults(fail_after_bytes=3200, fail_message="midway"))
    speaker = synthesizer(AudioFormat.PCM_16000HZ_MONO_16BIT)
    with pytest.raises(RequestFailure) as caught:
        await asyncio.to_thread(speaker.call, TEXT, TIMEOUT_MS)
    assert (caught.value.name, caught.value.message) == ("InternalError", "midway")


def new_pool(max_size: int) -> Any:
    # Connects max_size sockets one by one, ~100 ms each (docs/protocol.md#the-vendor-sdks-pool): run it in a
    # thread.
    return SpeechSynthesizerObjectPool(max_size=max_size)


def borrow(pool: Any, **kwargs: Any) -> Any:
    return pool.borrow_synthesizer(
        model=MODEL, voice=VOICE, format=AudioFormat.PCM_16000HZ_MONO_16BIT, **kwargs
    )


async def test_pool_reuses_its_sockets(upstream: DevUpstream) -> None:
    pool = await asyncio.to_thread(new_pool, 2)
    assert upstream.stats()["connections_opened"] == 2  # pre-connected, nothing sent yet

    def three_calls() -> list[bytes]:
        results = []
        for text in ("Pooled call number one.", "Number two.", "Three, on a socket that already ran a task."):
            speaker = borrow(pool)
            results.append(speaker.call(text, TIMEOUT_MS))
            pool.return_synthesizer(speaker)
        return results

    try:
        results = await asyncio.to_thread(three_calls)
    finally:
        await asyncio.to_thread(pool.shutdown)
    assert all(len(audio) > 16000 for audio in results)
    stats = upstream.stats()
    assert stats["connections_opened"] == 2, "three tasks, no new connection"
    assert stats["tasks_finished"] == 3
    assert stats["invalid_action_errors"] == 0

    # The pool never closes its sockets; stop() must still end cleanly and promptly.
    assert stats["connections_open"] == 2
    await asyncio.wait_for(upstream.stop(), TIMEOUT_MS / 1000)
    assert upstream.stats()["connections_open"] == 0


async def test_returning_an_unfinished_synthesizer_is_the_documented_trap(upstream: DevUpstream) -> None:
    pool = await asyncio.to_thread(new_pool, 1)

    def abandon_then_reuse() -> None:
        speaker = borrow(pool, callback=Collector())
        speaker.streaming_call("This task is abandoned without finish-task")
        # The mistake the vendor's docs warn about (docs/protocol.md#the-vendor-sdks-pool).
        pool.return_synthesizer(speaker)
        reused = borrow(pool)
        assert reused is speaker
        reused.call("The next borrower's text.", TIMEOUT_MS)

    try:
        with pytest.raises(RequestFailure) as caught:
            await asyncio.to_thread(abandon_then_reuse)
    finally:
        await asyncio.to_thread(pool.shutdown)
    assert (caught.value.name, caught.value.message) == ("InvalidParameter", ERROR_INVALID_ACTION_RUN_TASK)
    assert upstream.stats()["invalid_action_errors"] == 1
