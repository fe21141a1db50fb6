"""The local upstream on an ephemeral loopback port, driven by a raw WebSocket client.

Checks the wire protocol of docs/protocol.md#cosyvoice-duplex-websocket (event order and
shapes, task reuse, the vendor's error messages), the timers, every fault knob and the dev
endpoints. Delays are checked as ordering facts, never as timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from voxgate.speech.protocol import (
    ERROR_INVALID_ACTION_RUN_TASK,
    ERROR_INVALID_TEXT,
    ERROR_RATE_LIMITED,
    weighted_length,
)
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

KEY = "sk-local-test"
MODEL = "cosyvoice-v3-flash"
VOICE = "longanyang"
STEP_TIMEOUT_S = 10.0
"""Bound on any single wait, so a bug fails the test instead of hanging it."""
PCM_16K_PARAMS: dict[str, Any] = {"voice": VOICE, "format": "pcm", "sample_rate": 16000}

SERVER_DIR = Path(__file__).resolve().parents[2] / "server"
"""The import root of voxgate, for the subprocess in case voxgate is not installed."""

StartUpstream = Callable[..., Awaitable[DevUpstream]]


@pytest.fixture
async def start_upstream() -> AsyncIterator[StartUpstream]:
    """Start upstreams with the given UpstreamOptions fields; all are stopped after the test."""
    started: list[DevUpstream] = []

    async def start(**fields: Any) -> DevUpstream:
        upstream = DevUpstream(UpstreamOptions(**fields))
        await upstream.start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Received:
    """What a task produced: text events (parsed) and binary frames, in arrival order."""

    frames: list[dict[str, Any] | bytes] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if isinstance(f, dict)]

    @property
    def audio(self) -> bytes:
        return b"".join(f for f in self.frames if isinstance(f, bytes))

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]


def kind(frame: dict[str, Any] | bytes) -> str:
    """A short name for a frame: the event, the sentence type, or "audio"."""
    if isinstance(frame, bytes):
        return "audio"
    output_type = frame["payload"].get("output", {}).get("type")
    return str(output_type or frame["header"]["event"])


class Client:
    """A raw duplex-protocol client, speaking exactly the SDK's commands (docs/protocol.md#run-task)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, action: str, task_id: str, payload: dict[str, Any]) -> None:
        header = {"action": action, "task_id": task_id, "streaming": "duplex"}
        await self.ws.send_str(json.dumps({"header": header, "payload": payload}))

    async def run_task(self, parameters: dict[str, Any] | None = None, *, task_id: str | None = None) -> str:
        task_id = task_id or uuid.uuid4().hex
        payload = {
            "model": MODEL,
            "task_group": "audio",
            "task": "tts",
            "function": "SpeechSynthesizer",
            "input": {},
            "parameters": parameters if parameters is not None else dict(PCM_16K_PARAMS),
        }
        await self.send("run-task", task_id, payload)
        return task_id

    async def text(self, task_id: str, text: str) -> None:
        await self.send("continue-task", task_id, {"model": MODEL, "input": {"text": text}})

    async def flush(self, task_id: str) -> None:
        await self.send("continue-task", task_id, {"model": MODEL, "input": {"flush": True}})

    async def finish(self, task_id: str, *, cancel: bool = False) -> None:
        await self.send("finish-task", task_id, {"input": {"directive": "cancel"} if cancel else {}})

    async def receive(self) -> aiohttp.WSMessage:
        return await asyncio.wait_for(self.ws.receive(), STEP_TIMEOUT_S)

    async def next_frame(self) -> dict[str, Any] | bytes:
        message = await self.receive()
        if message.type is aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        parsed: dict[str, Any] = json.loads(message.data)
        return parsed

    async def next_event(self) -> dict[str, Any]:
        frame = await self.next_frame()
        assert isinstance(frame, dict), f"expected an event, got {len(frame)} audio bytes"
        return frame

    async def read_until(self, *stop_kinds: str) -> Received:
        """Frames until one of ``stop_kinds`` (default: the end of a task) arrives, inclusive."""
        stop = stop_kinds or ("task-finished", "task-failed")
        received = Received()
        while True:
            frame = await self.next_frame()
            received.frames.append(frame)
            if kind(frame) in stop:
                return received

    async def synthesize(self, text: str, parameters: dict[str, Any] | None = None) -> tuple[str, Received]:
        """One whole task the way the SDK's call() runs it (docs/protocol.md#task-lifecycle)."""
        task_id = await self.run_task(parameters)
        assert kind(await self.next_event()) == "task-started"
        await self.text(task_id, text)
        await self.finish(task_id)
        return task_id, await self.read_until()

    async def expect_close(self) -> int | None:
        """Wait for the server's close; returns its code (None: TCP dropped without a close frame)."""
        message = await self.receive()
        if message.type is aiohttp.WSMsgType.CLOSE:
            return int(message.data)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), message
        return None


@pytest.fixture
async def connect(http: aiohttp.ClientSession) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    opened: list[aiohttp.ClientWebSocketResponse] = []

    async def connect(
        upstream: DevUpstream,
        *,
        key: str = KEY,
        scheme: str = "Bearer",
        url: str | None = None,
        **kwargs: Any,
    ) -> Client:
        ws = await http.ws_connect(
            url or upstream.ws_url,
            headers={"Authorization": f"{scheme} {key}"},
            autoclose=False,
            timeout=aiohttp.ClientWSTimeout(ws_close=STEP_TIMEOUT_S),
            **kwargs,
        )
        opened.append(ws)
        return Client(ws)

    yield connect
    for ws in opened:
        await ws.close()


Connect = Callable[..., Awaitable[Client]]


def assert_task_shape(received: Received, task_id: str, sentences: list[str]) -> None:
    """The sequence of docs/protocol.md#result-generated: per sentence begin, N x (synthesis + audio), end;
    then task-finished."""
    kinds = [kind(f) for f in received.frames]
    assert all(event["header"]["task_id"] == task_id for event in received.events)
    position = 0
    characters = 0
    for index, text in enumerate(sentences):
        begin = received.frames[position]
        assert kind(begin) == "sentence-begin"
        assert isinstance(begin, dict)
        assert begin["payload"]["output"]["sentence"]["index"] == index
        assert begin["payload"]["output"]["original_text"] == text
        position += 1
        pairs = 0
        while kinds[position] == "sentence-synthesis":
            assert kinds[position + 1] == "audio", "a sentence-synthesis event must precede each audio frame"
            position += 2
            pairs += 1
        assert pairs > 0
        end = received.frames[position]
        assert isinstance(end, dict) and kind(end) == "sentence-end"
        characters += weighted_length(text)
        assert end["payload"]["output"]["original_text"] == text
        assert end["payload"]["usage"]["characters"] == characters
        position += 1
    finished = received.frames[position]
    assert position == len(received.frames) - 1
    assert isinstance(finished, dict) and kind(finished) == "task-finished"
    uuid.UUID(finished["header"]["attributes"]["request_uuid"], version=4)
    assert finished["payload"]["usage"]["characters"] == characters


def assert_failed(event: dict[str, Any], task_id: str, code: str, message: str) -> None:
    assert event["header"] == {
        "task_id": task_id,
        "event": "task-failed",
        "error_code": code,
        "error_message": message,
        "attributes": {},
    }
    assert event["payload"] == {}


# --- the happy path --------------------------------------------------------------------------


async def test_task_events_follow_the_documented_sequence(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id, received = await client.synthesize("Hello there. This is a test")

    assert_task_shape(received, task_id, ["Hello there. ", "This is a test"])
    audio = received.audio
    assert len(audio) % 2 == 0
    assert 0.5 < len(audio) / 2 / 16000 < 10, "about two seconds of 16 kHz speech"
    assert upstream.stats()["audio_bytes_sent"] == len(audio)


async def test_two_tasks_share_one_connection(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    first_id, first = await client.synthesize("First task.")
    second_id, second = await client.synthesize("Second task on the same socket.")

    assert first_id != second_id
    assert_task_shape(first, first_id, ["First task."])
    assert_task_shape(second, second_id, ["Second task on the same socket."])
    stats = upstream.stats()
    assert stats["connections_opened"] == 1
    assert stats["tasks_finished"] == 2


async def test_streamed_text_is_split_into_sentences_and_flushed(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "First part of a sentence, ")
    await client.text(task_id, "which now ends. And a second one")
    first = await client.read_until("sentence-end")
    assert (
        first.events[0]["payload"]["output"]["original_text"] == "First part of a sentence, which now ends. "
    )

    # The incomplete tail is spoken on flush, before finish-task is even sent.
    await client.flush(task_id)
    flushed = await client.read_until("sentence-end")
    assert flushed.events[0]["payload"]["output"]["original_text"] == "And a second one"

    await client.text(task_id, " plus a tail")
    await client.finish(task_id)
    rest = await client.read_until()
    assert [e["payload"]["output"]["original_text"] for e in rest.events if kind(e) == "sentence-begin"] == [
        " plus a tail"
    ]
    assert rest.last["payload"]["usage"]["characters"] == weighted_length(
        "First part of a sentence, which now ends. And a second one plus a tail"
    )


async def test_chinese_text_counts_ideographs_twice(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id, received = await client.synthesize("床前明月光。疑是地上霜。")
    assert_task_shape(received, task_id, ["床前明月光。", "疑是地上霜。"])
    assert received.last["payload"]["usage"]["characters"] == 10 * 2 + 2, "ideographs 2, punctuation 1"


@pytest.mark.parametrize("path_suffix", ["", "/"])
async def test_lowercase_bearer_and_trailing_slash_are_accepted(
    start_upstream: StartUpstream, connect: Connect, path_suffix: str
) -> None:
    upstream = await start_upstream(api_key=KEY)
    client = await connect(upstream, scheme="bearer", url=upstream.ws_url + path_suffix)
    task_id, received = await client.synthesize("Lower case scheme.")
    assert_task_shape(received, task_id, ["Lower case scheme."])


async def test_pings_are_answered(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream, autoping=False)
    await client.ws.ping(b"keepalive")
    pong = await client.receive()
    assert pong.type is aiohttp.WSMsgType.PONG
    assert pong.data == b"keepalive"
    assert upstream.stats()["pings_received"] == 1


async def test_cancel_stops_early_and_finishes(start_upstream: StartUpstream, connect: Connect) -> None:
    # A long first-packet delay keeps audio back; the cancel must cut it short (docs/protocol.md#finish-task).
    upstream = await start_upstream(faults=Faults(first_packet_delay_ms=60_000))
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "Something to cancel. ")
    assert kind(await client.next_event()) == "sentence-begin"
    await client.finish(task_id, cancel=True)
    received = await client.read_until()
    assert [kind(f) for f in received.frames] == ["task-finished"]
    assert received.last["payload"]["usage"]["characters"] == 0
    assert upstream.stats()["tasks_cancelled"] == 1


async def test_pacing_holds_audio_back_until_cancelled(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    # rtf=100: each 100 ms frame waits 10 s after the previous one; only the first leaves at
    # once. A cancel must cut the wait short and end the task mid-sentence.
    upstream = await start_upstream(rtf=100.0)
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "A long sentence that would take minutes at this pace. ")
    first = await client.read_until("audio")
    assert [kind(f) for f in first.frames] == ["sentence-begin", "sentence-synthesis", "audio"]
    await client.finish(task_id, cancel=True)
    rest = await client.read_until()
    assert [kind(f) for f in rest.frames] == ["task-finished"]


# --- formats -------------------------------------------------------------------------------------


async def test_wav_has_one_streaming_header(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    _, received = await client.synthesize("A wave file. Two sentences.", {"voice": VOICE, "format": "wav"})
    frames = [f for f in received.frames if isinstance(f, bytes)]
    header = frames[0][:44]
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt "
    assert header[4:8] == b"\xff\xff\xff\xff" and header[40:44] == b"\xff\xff\xff\xff"
    assert int.from_bytes(header[24:28], "little") == 22050, "wav without sample_rate means the default 22050"
    assert all(b"RIFF" not in frame[:4] for frame in frames[1:])


async def test_sdk_default_format_means_mp3_22050(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    parameters = {"voice": VOICE, "format": "Default", "sample_rate": 0}
    _, received = await client.synthesize("Default format please.", parameters)
    audio = received.audio
    assert audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0, "starts with an MPEG frame sync"
    assert (audio[1] >> 3) & 0x3 == 0b10 and (audio[2] >> 2) & 0x3 == 0, "MPEG-2, 22050 Hz"


# --- the vendor's errors --------------------------------------------------------------------------


async def test_run_task_during_active_task_is_invalid_action(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    abandoned = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(abandoned, "This task is abandoned without finish-task")
    second = await client.run_task()
    received = await client.read_until("task-failed")

    assert_failed(received.last, second, "InvalidParameter", ERROR_INVALID_ACTION_RUN_TASK)
    assert await client.expect_close() == 1000
    assert upstream.stats()["invalid_action_errors"] == 1


async def test_run_task_while_active_can_preempt(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(run_task_while_active="preempt")
    client = await connect(upstream)
    old = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(old, "An old task without an ending")
    new = await client.run_task()
    started = await client.read_until("task-started")
    assert started.last["header"]["task_id"] == new
    await client.text(new, "The new task.")
    await client.finish(new)
    received = await client.read_until()
    assert received.last["header"]["event"] == "task-finished"
    assert received.last["header"]["task_id"] == new


@pytest.mark.parametrize(
    ("payload_change", "message"),
    [
        ({"input": None}, "Missing required parameter 'payload.input'! Please follow the protocol!"),
        ({"model": None}, "Missing required parameter 'payload.model'! Please follow the protocol!"),
        ({"parameters": {"voice": "nobody"}}, "[tts:]Engine return error code: 418"),
        (
            {"parameters": {"voice": VOICE, "format": "opus", "sample_rate": 22050}},
            "sample_rate 22050 is invalid, expected one of 8000, 16000, 24000, 48000",
        ),
    ],
)
async def test_invalid_run_task_fails_and_closes(
    start_upstream: StartUpstream, connect: Connect, payload_change: dict[str, Any], message: str
) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id = uuid.uuid4().hex
    payload: dict[str, Any] = {"model": MODEL, "input": {}, "parameters": dict(PCM_16K_PARAMS)}
    payload.update(payload_change)
    payload = {k: v for k, v in payload.items() if v is not None}
    await client.send("run-task", task_id, payload)
    assert_failed(await client.next_event(), task_id, "InvalidParameter", message)
    assert await client.expect_close() == 1000


async def test_unsupported_sample_rate_is_rejected(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    await client.run_task({"voice": VOICE, "format": "pcm", "sample_rate": 11025})
    event = await client.next_event()
    assert event["header"]["error_code"] == "InvalidParameter"
    assert "sample_rate" in event["header"]["error_message"]


async def test_finish_without_text_is_invalid_text(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.finish(task_id)
    assert_failed(await client.next_event(), task_id, "InvalidParameter", ERROR_INVALID_TEXT)


async def test_ssml_allows_one_text_request(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id = await client.run_task({**PCM_16K_PARAMS, "enable_ssml": True})
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "One")
    await client.text(task_id, "Two")
    received = await client.read_until("task-failed")
    assert_failed(received.last, task_id, "InvalidParameter", "Text request limit violated, expected 1.")


async def test_commands_for_another_task_fail(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    stranger = uuid.uuid4().hex
    await client.finish(stranger)
    assert_failed(
        await client.next_event(),
        stranger,
        "InvalidParameter",
        "Invalid action('finish-task')! Please follow the protocol!",
    )


async def test_bad_or_missing_key_gets_401_before_the_upgrade(
    start_upstream: StartUpstream, http: aiohttp.ClientSession
) -> None:
    upstream = await start_upstream(api_key=KEY)
    for headers in ({"Authorization": "Bearer sk-wrong"}, {}, {"Authorization": f"Basic {KEY}"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(upstream.ws_url, headers=headers)
        assert caught.value.status == 401
    async with http.get(upstream.ws_url, headers={"Authorization": "Bearer sk-wrong"}) as response:
        assert response.status == 401
        body = await response.json()
    assert body["code"] == "InvalidApiKey"
    assert body["message"] == "Invalid API-key provided."
    assert body["request_id"]
    assert upstream.stats()["handshakes_rejected"] == 4
    assert upstream.stats()["connections_opened"] == 0


# --- timers ------------------------------------------------------------------------------------


async def test_idle_connection_is_closed(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(idle_timeout_s=0.2)
    client = await connect(upstream)
    task_id, received = await client.synthesize("One task, then silence.")
    assert_task_shape(received, task_id, ["One task, then silence."])
    assert await client.expect_close() == 1000
    assert upstream.stats()["idle_timeouts"] == 1


async def test_pings_do_not_hold_off_the_idle_cut_by_default(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    # Whether DashScope counts pings as activity is unknown (docs/protocol.md#keepalive-and-pings):
    # by default the local upstream takes the stricter reading, which a client has to survive.
    upstream = await start_upstream(idle_timeout_s=0.3)
    client = await connect(upstream, autoping=False)
    while (message := await client.receive()).type is not aiohttp.WSMsgType.CLOSE:
        assert message.type is aiohttp.WSMsgType.PONG
        await client.ws.ping(b"still here")
    assert upstream.stats()["idle_timeouts"] == 1


async def test_pings_keep_alive_when_configured(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(idle_timeout_s=0.3, pings_keep_alive=True)
    client = await connect(upstream, autoping=False)
    until = time.monotonic() + 1.5  # five idle periods
    while time.monotonic() < until:
        await client.ws.ping(b"still here")
        assert (await client.receive()).type is aiohttp.WSMsgType.PONG
    assert upstream.stats()["idle_timeouts"] == 0


async def test_close_after_handshake_says_why_in_the_close_frame(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    upstream = await start_upstream(
        faults=Faults(close_after_handshake=True, fail_code="Arrearage", fail_message="Quota used up.")
    )
    client = await connect(upstream)
    message = await client.receive()
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert (message.data, message.extra) == (1008, "Arrearage: Quota used up.")
    assert upstream.stats()["connections_closed_after_handshake"] == 1


async def test_a_stalled_connection_answers_no_ping_and_does_not_close(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    upstream = await start_upstream(faults=Faults(stall_after_handshake=True))
    client = await connect(upstream, autoping=False)
    await client.ws.ping(b"anyone?")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.ws.receive(), 0.5)  # no pong, no close frame, no FIN
    assert not client.ws.closed
    assert upstream.stats()["connections_stalled"] == 1


async def test_text_gap_fails_the_task(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(text_gap_timeout_s=0.2)
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "An unfinished sentence")
    assert_failed(
        await client.next_event(), task_id, "InvalidParameter", "request timeout after 0.2 seconds."
    )
    assert await client.expect_close() == 1000
    assert upstream.stats()["text_gap_timeouts"] == 1


# --- faults -----------------------------------------------------------------------------------


async def test_drop_right_after_task_started(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(faults=Faults(drop_after_bytes=0))
    client = await connect(upstream)
    await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    assert await client.expect_close() is None, "no close frame, just a dead TCP connection"
    assert upstream.stats()["connections_dropped"] == 1


async def test_drop_after_some_audio(start_upstream: StartUpstream, connect: Connect) -> None:
    # 16 kHz PCM in 100 ms frames: 3200 bytes per frame.
    upstream = await start_upstream(faults=Faults(drop_after_bytes=3200))
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "Connection will drop now.")
    await client.finish(task_id)
    frames: list[dict[str, Any] | bytes] = []
    while (message := await client.receive()).type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
        frames.append(message.data if isinstance(message.data, bytes) else json.loads(message.data))
    assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert [kind(f) for f in frames] == ["sentence-begin", "sentence-synthesis", "audio"]
    assert len(frames[-1]) == 3200


@pytest.mark.parametrize("after_bytes", [0, 3200])
async def test_injected_failure(start_upstream: StartUpstream, connect: Connect, after_bytes: int) -> None:
    faults = Faults(fail_after_bytes=after_bytes, fail_code="InternalError", fail_message="boom")
    upstream = await start_upstream(faults=faults)
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "This will fail midway. Really.")
    await client.finish(task_id)
    received = await client.read_until()
    assert_failed(received.last, task_id, "InternalError", "boom")
    assert len(received.audio) == after_bytes
    assert await client.expect_close() == 1000


async def test_throttle_once_then_normal(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(faults=Faults(throttle=True, times=1))
    client = await connect(upstream)
    task_id = await client.run_task()
    assert_failed(await client.next_event(), task_id, "Throttling.RateQuota", ERROR_RATE_LIMITED)
    assert await client.expect_close() == 1000

    again = await connect(upstream)
    task_id, received = await again.synthesize("Not throttled any more.")
    assert_task_shape(received, task_id, ["Not throttled any more."])


async def test_rejected_handshake_then_accepted(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream(faults=Faults(reject_handshake_status=503, times=1))
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await connect(upstream)
    assert caught.value.status == 503
    client = await connect(upstream)
    task_id, received = await client.synthesize("Second try.")
    assert_task_shape(received, task_id, ["Second try."])
    assert upstream.stats()["handshakes_rejected"] == 1


async def test_task_started_delay_makes_early_text_illegal(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    # Text sent before task-started fails the task (docs/protocol.md#continue-task); the
    # delay guarantees ours arrives first.
    upstream = await start_upstream(faults=Faults(task_started_delay_ms=60_000))
    client = await connect(upstream)
    task_id = await client.run_task()
    await client.text(task_id, "Too early.")
    assert_failed(
        await client.next_event(),
        task_id,
        "InvalidParameter",
        "Invalid action('continue-task')! Please follow the protocol!",
    )


async def test_delayed_connect_and_first_packet_still_complete(
    start_upstream: StartUpstream, connect: Connect
) -> None:
    upstream = await start_upstream(faults=Faults(connect_delay_ms=50, first_packet_delay_ms=50))
    client = await connect(upstream)
    task_id, received = await client.synthesize("Slow but whole.")
    assert_task_shape(received, task_id, ["Slow but whole."])


async def test_stop_does_not_hang_on_delayed_handshakes(
    start_upstream: StartUpstream, http: aiohttp.ClientSession
) -> None:
    # Only one of two concurrent handshakes gets the delay (times=1). Once the other one
    # completes, the delayed one is provably waiting inside the server.
    upstream = await start_upstream(faults=Faults(connect_delay_ms=60_000, times=1))
    headers = {"Authorization": f"Bearer {KEY}"}
    handshakes = {asyncio.create_task(http.ws_connect(upstream.ws_url, headers=headers)) for _ in range(2)}
    done, pending = await asyncio.wait(
        handshakes, timeout=STEP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    assert len(done) == 1 and len(pending) == 1
    await done.pop().result().close()

    await asyncio.wait_for(upstream.stop(), STEP_TIMEOUT_S)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await asyncio.wait_for(pending.pop(), STEP_TIMEOUT_S)
    assert caught.value.status == 503


async def test_stop_closes_open_connections(start_upstream: StartUpstream, connect: Connect) -> None:
    upstream = await start_upstream()
    client = await connect(upstream)
    task_id = await client.run_task()
    assert kind(await client.next_event()) == "task-started"
    await client.text(task_id, "Left open")
    await asyncio.wait_for(upstream.stop(), STEP_TIMEOUT_S)
    assert await client.expect_close() == 1001
    assert upstream.stats()["connections_open"] == 0


# --- dev endpoints and the command line ----------------------------------------------------------------


async def test_dev_endpoints_switch_faults_and_report_stats(
    start_upstream: StartUpstream, connect: Connect, http: aiohttp.ClientSession
) -> None:
    upstream = await start_upstream(api_key=KEY)
    base = f"http://127.0.0.1:{upstream.port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    for headers in ({}, {"Authorization": "Bearer sk-another-process"}):
        async with http.put(f"{base}/_dev/faults", json={"throttle": True}, headers=headers) as response:
            assert response.status == 401
        async with http.get(f"{base}/_dev/faults", headers=headers) as response:
            assert response.status == 401
    assert upstream.faults == Faults()
    async with http.put(f"{base}/_dev/faults", json={"throttle": True, "times": 1}, headers=auth) as response:
        assert response.status == 200
        assert (await response.json())["throttle"] is True
    assert upstream.faults == Faults(throttle=True, times=1)

    client = await connect(upstream)
    task_id = await client.run_task()
    assert (await client.next_event())["header"]["error_code"] == "Throttling.RateQuota"

    async with http.put(f"{base}/_dev/faults", json={"no_such_fault": 1}, headers=auth) as response:
        assert response.status == 400
        assert "no_such_fault" in (await response.json())["message"]
    async with http.put(f"{base}/_dev/faults", json={"probability": 2}, headers=auth) as response:
        assert response.status == 400
    async with http.get(f"{base}/_dev/stats") as response:
        stats = await response.json()
    assert stats == upstream.stats()
    assert stats["tasks_failed"] == 1
    assert task_id


async def test_module_runs_as_a_process_with_the_env_key(http: aiohttp.ClientSession) -> None:
    python_path = os.pathsep.join(filter(None, [str(SERVER_DIR), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "DASHSCOPE_API_KEY": "sk-from-env", "PYTHONPATH": python_path}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxgate_dev",
        "--port",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT_S)).decode()
        prefix = "voxgate dev-upstream listening on "
        assert line.startswith(prefix), line
        ws_url = line[len(prefix) :].strip()
        assert ws_url.startswith("ws://127.0.0.1:") and ws_url.endswith("/api-ws/v1/inference")

        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(ws_url, headers={"Authorization": "Bearer any-other-key"})
        assert caught.value.status == 401
        ws = await http.ws_connect(ws_url, headers={"Authorization": "Bearer sk-from-env"})
        await ws.close()

        stats_url = ws_url.replace("ws://", "http://").replace("/api-ws/v1/inference", "/_dev/stats")
        async with http.get(stats_url) as response:
            stats = await response.json()
        assert stats["connections_opened"] == 1
        assert stats["handshakes_rejected"] == 1
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), STEP_TIMEOUT_S)
    assert code == 0
