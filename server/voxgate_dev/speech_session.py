"""One WebSocket connection of the local upstream's CosyVoice endpoint
(docs/protocol.md#cosyvoice-duplex-websocket), served by :class:`Session`.

A session has three kinds of activity, all on the event loop:

* the reader (the handler's own task) reads client frames and changes task state;
* one runner task per protocol task sends task-started, synthesizes sentence by sentence
  and streams audio, then task-finished;
* one timer (idle when no task, text gap while a task is started).

Every write goes through one lock, so a ``sentence-synthesis`` event and its binary frame
are never separated by another frame. Any failure sends task-failed and closes the
connection with 1000, as the vendor does (it "can't be reused"; the code is a guess:
docs/protocol.md#close-codes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from voxgate.speech.protocol import (
    ACTION_CONTINUE_TASK,
    ACTION_FINISH_TASK,
    ACTION_RUN_TASK,
    ERROR_INVALID_ACTION_RUN_TASK,
    ERROR_INVALID_TEXT,
    ERROR_RATE_LIMITED,
    ERROR_TEXT_GAP_TIMEOUT,
    MAX_TEXT_CHARS_PER_CONTINUE,
    MAX_TEXT_CHARS_PER_TASK,
    SENTENCE_BEGIN,
    SENTENCE_END,
    SENTENCE_SYNTHESIS,
    TEXT_GAP_LIMIT_S,
    weighted_length,
)

from . import speech_events
from .audio import new_encoder
from .espeak import SpeechError
from .speech_request import (
    CODE_INVALID_PARAMETER,
    ERROR_MISSING_INPUT,
    RequestError,
    parse_run_task,
)
from .speech_tasks import Sentence, ServedTaskState, Task, TaskEnded, invalid_action
from .text import is_ssml, strip_ssml

if TYPE_CHECKING:
    from .speech_ws import SpeechEndpoint

log = logging.getLogger(__name__)

CODE_THROTTLED = "Throttling.RateQuota"
CODE_INTERNAL = "InternalError"
# [GUESS] only the message is documented (docs/protocol.md#error-strings)
CODE_GAP_TIMEOUT = "InvalidParameter"
ERROR_SSML_LIMIT = "Text request limit violated, expected 1."
# As recorded (tests/fixtures/sdk-2.0.2-timeline.txt, tts_fail_mid).
ERROR_ENGINE = "[tts:]Engine return error code: 500"
ERROR_TEXT_TOO_LONG = "Text length exceeds the limit."  # [GUESS]
ERROR_MALFORMED = "task can not be null"  # with WS close 1007 (docs/protocol.md#close-codes)

CLOSE_TIMEOUT_S = 2.0
"""How long a close waits for the client's close frame before dropping the TCP connection."""
_CLOSE_NORMAL = 1000
_CLOSE_GOING_AWAY = 1001
_CLOSE_UNSUPPORTED_DATA = 1003
_CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
MAX_CLOSE_REASON = 123  # bytes: a close frame's payload is at most 125, 2 of them the code


class Session:
    """One WebSocket connection, running one task at a time (many in sequence)."""

    def __init__(self, endpoint: SpeechEndpoint, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._endpoint = endpoint
        self._options = endpoint.options
        self._stats = endpoint.stats
        self._ws = ws
        self._transport = request.transport
        self._loop = asyncio.get_running_loop()
        self._send_lock = asyncio.Lock()
        self._task: Task | None = None
        self._runner: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._close_started = False
        self._closing = False
        self._stalled = False

    # -- reading ------------------------------------------------------------------------

    async def run(self) -> None:
        """Read client frames until the connection ends; then stop everything it started."""
        self._arm_idle()
        try:
            async for message in self._ws:
                if self._closing:
                    continue  # frames racing our task-failed/close are dropped, like the vendor's
                if message.type is WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type is WSMsgType.PING:
                    await self._on_ping(message.data)
                elif message.type is WSMsgType.BINARY:
                    # The protocol has no client audio (docs/protocol.md#frames).
                    self._start_close(_CLOSE_UNSUPPORTED_DATA, b"binary frames are not supported")
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            await self._wind_down()

    async def _on_ping(self, data: bytes) -> None:
        self._stats.pings_received += 1
        async with self._send_lock:
            with contextlib.suppress(ConnectionError):
                await self._ws.pong(data)
        if self._task is None and self._options.pings_keep_alive:
            # Whether the vendor counts a ping as activity is unknown (docs/protocol.md#keepalive-and-pings).
            self._arm_idle()

    def stall(self) -> None:
        """Go silent (fault injection): stop reading, so pings get no pong, and send nothing
        more, not even a close; the TCP connection stays up (no FIN) until the server stops."""
        if self._stalled:
            return
        self._stalled = self._closing = True
        self._disarm()
        self._stats.connections_stalled += 1
        if self._transport is not None:
            self._transport.pause_reading()

    async def _on_text(self, data: str) -> None:
        try:
            message = json.loads(data)
            header = message["header"]
            action = header["action"]
            task_id = header["task_id"]
            payload = message.get("payload")
            if payload is None:
                payload = {}
            if not isinstance(action, str) or not isinstance(task_id, str) or not task_id:
                raise TypeError("action and task_id must be strings")
            if not isinstance(payload, Mapping):
                raise TypeError("payload must be an object")
        except (ValueError, KeyError, TypeError):
            # Undecodable command: no task to fail, so just close 1007 (docs/protocol.md#close-codes).
            self._start_close(_CLOSE_INVALID_PAYLOAD, ERROR_MALFORMED.encode())
            return

        if action == ACTION_RUN_TASK:
            await self._on_run_task(task_id, payload)
        elif action == ACTION_CONTINUE_TASK:
            await self._on_continue_task(task_id, payload)
        elif action == ACTION_FINISH_TASK:
            await self._on_finish_task(task_id, payload)
        else:
            await self._fail(task_id, CODE_INVALID_PARAMETER, invalid_action(action))

    async def _on_run_task(self, task_id: str, payload: Mapping[str, Any]) -> None:
        current = self._task
        if current is not None:
            if self._options.run_task_while_active == "fail":
                # The trap of returning an unfinished synthesizer to the SDK pool
                # (docs/protocol.md#connection-reuse).
                self._stats.invalid_action_errors += 1
                await self._fail(task_id, CODE_INVALID_PARAMETER, ERROR_INVALID_ACTION_RUN_TASK)
                return
            await self._preempt()
        try:
            spec = parse_run_task(payload)
        except RequestError as exc:
            await self._fail(task_id, exc.code, exc.message)
            return
        faults = self._endpoint.faults.for_task()
        if faults.throttle:
            await self._fail(task_id, CODE_THROTTLED, ERROR_RATE_LIMITED)
            return
        task = Task(task_id, spec, faults, new_encoder(spec.audio_format, spec.sample_rate))
        self._task = task
        self._disarm()
        self._runner = asyncio.create_task(self._run_task(task), name=f"devupstream-task-{task_id}")

    def _task_for(self, task_id: str) -> Task | None:
        """The started task this command addresses, or None if the command is illegal now."""
        task = self._task
        if task is None or task.task_id != task_id or task.state is not ServedTaskState.STARTED:
            return None
        return task

    async def _on_continue_task(self, task_id: str, payload: Mapping[str, Any]) -> None:
        task = self._task_for(task_id)
        if task is None:
            # Before task-started, after finish-task, or for another task: the task fails
            # (docs/protocol.md#continue-task).
            self._stats.invalid_action_errors += 1
            await self._fail(task_id, CODE_INVALID_PARAMETER, invalid_action(ACTION_CONTINUE_TASK))
            return
        self._arm_gap(task)
        task_input = payload.get("input")
        if not isinstance(task_input, Mapping):
            await self._fail(task_id, CODE_INVALID_PARAMETER, ERROR_MISSING_INPUT)
            return
        text = task_input.get("text")
        if isinstance(text, str) and text:
            await self._add_text(task, text)
        if task_input.get("flush") is True and not self._closing:
            # Not in the public docs; we read it as "speak the buffered partial sentence now" [GUESS]
            # (docs/protocol.md#continue-task).
            self._queue_sentence(task, task.buffer.flush())

    async def _add_text(self, task: Task, text: str) -> None:
        task.text_requests += 1
        if task.spec.enable_ssml and task.text_requests > 1:
            # With enable_ssml only ONE continue-task is allowed (docs/protocol.md#run-task); the SDK's
            # call() obeys.
            await self._fail(task.task_id, CODE_INVALID_PARAMETER, ERROR_SSML_LIMIT)
            return
        chars = weighted_length(strip_ssml(text) if task.spec.enable_ssml else text)
        task.text_chars += chars
        if chars > MAX_TEXT_CHARS_PER_CONTINUE or task.text_chars > MAX_TEXT_CHARS_PER_TASK:
            await self._fail(task.task_id, CODE_INVALID_PARAMETER, ERROR_TEXT_TOO_LONG)
            return
        if task.spec.enable_ssml and is_ssml(text):
            # An SSML document is one unit; splitting it would cut its tags apart.
            self._queue_sentence(task, text)
            return
        for sentence_text in task.buffer.feed(text):
            self._queue_sentence(task, sentence_text)

    def _queue_sentence(self, task: Task, text: str | None) -> None:
        if text:
            task.sentences_queued += 1
            task.queue.put_nowait(Sentence(text, self._loop.time()))

    async def _on_finish_task(self, task_id: str, payload: Mapping[str, Any]) -> None:
        task = self._task_for(task_id)
        if task is None:
            self._stats.invalid_action_errors += 1
            await self._fail(task_id, CODE_INVALID_PARAMETER, invalid_action(ACTION_FINISH_TASK))
            return
        self._disarm()  # no text gap once the client said it is done
        task_input = payload.get("input")
        if isinstance(task_input, Mapping) and task_input.get("directive") == "cancel":
            # streaming_cancel(): "stops synthesis early, responds task-finished" (SDK docstring,
            # docs/protocol.md#finish-task).
            task.cancelled.set()
        else:
            self._queue_sentence(task, task.buffer.flush())
            if task.sentences_queued == 0:
                await self._fail(task_id, CODE_INVALID_PARAMETER, ERROR_INVALID_TEXT)
                return
        task.state = ServedTaskState.FINISHING
        task.queue.put_nowait(None)

    # -- the task runner -------------------------------------------------------------------

    async def _run_task(self, task: Task) -> None:
        """task-started, then each sentence as it is queued, then task-finished."""
        try:
            if task.faults.task_started_delay_ms:
                await asyncio.sleep(task.faults.task_started_delay_ms / 1000)
            task.state = ServedTaskState.STARTED
            await self._send(speech_events.task_started(task.task_id))
            self._stats.tasks_started += 1
            self._arm_gap(task)
            if task.faults.drop_after_bytes == 0:
                self._drop()
                return
            if task.faults.stall_after_bytes == 0:
                self.stall()
                return
            while (sentence := await task.queue.get()) is not None:
                if not task.cancelled.is_set():
                    await self._speak(task, sentence)
            # The stream's end (Ogg/Opus: its last page), with the last sentence's audio.
            await self._send_audio(task, max(task.next_index - 1, 0), task.encoder.finish())
            # Mark the connection free BEFORE task-finished goes out: the client may send
            # its next run-task the moment it reads task-finished (pool reuse,
            # docs/protocol.md#connection-reuse).
            task.state = ServedTaskState.ENDED
            self._task = None
            self._arm_idle()
            await self._send(speech_events.task_finished(task.task_id, task.characters))
            if task.cancelled.is_set():
                self._stats.tasks_cancelled += 1
            self._stats.tasks_finished += 1
        except TaskEnded:
            pass
        except SpeechError:
            log.exception("espeak-ng failed in task %s", task.task_id)
            await self._fail(task.task_id, CODE_INTERNAL, ERROR_ENGINE)
        except ConnectionError:
            pass  # the client went away; the reader winds the session down
        except Exception:
            log.exception("local upstream bug in task %s", task.task_id)
            await self._fail(task.task_id, CODE_INTERNAL, ERROR_ENGINE)

    async def _speak(self, task: Task, sentence: Sentence) -> None:
        index = task.next_index
        task.next_index += 1
        await self._send(
            speech_events.sentence(
                task.task_id, index=index, kind=SENTENCE_BEGIN, original_text=sentence.text
            )
        )
        voice = task.spec.espeak_voice(sentence.text)
        pcm = await self._endpoint.engine.synthesize(sentence.text, voice, task.spec.sample_rate)

        if not task.first_audio_sent and task.faults.first_packet_delay_ms:
            delay_s = task.faults.first_packet_delay_ms / 1000
            await self._wait_cancel_until(task, sentence.available_at + delay_s)

        bytes_per_chunk = max(2, task.spec.sample_rate * self._options.chunk_ms // 1000 * 2)
        chunk_s = bytes_per_chunk / 2 / task.spec.sample_rate
        origin = self._loop.time()
        for number, offset in enumerate(range(0, len(pcm), bytes_per_chunk)):
            if self._options.rtf > 0:
                # Pace to the real-time factor: chunk n leaves at origin + n * chunk * rtf.
                await self._wait_cancel_until(task, origin + number * chunk_s * self._options.rtf)
            if task.cancelled.is_set():
                return  # cancel: no more audio, no sentence-end; task-finished follows
            await self._send_audio(task, index, task.encoder.encode(pcm[offset : offset + bytes_per_chunk]))
        await self._send_audio(task, index, task.encoder.end_sentence())

        text = strip_ssml(sentence.text) if voice.ssml else sentence.text
        task.characters += weighted_length(text)
        await self._send(
            speech_events.sentence(
                task.task_id,
                index=index,
                kind=SENTENCE_END,
                original_text=sentence.text,
                characters=task.characters,
            )
        )

    async def _wait_cancel_until(self, task: Task, deadline: float) -> None:
        delay = deadline - self._loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task.cancelled.wait(), delay)

    async def _send_audio(self, task: Task, index: int, data: bytes) -> None:
        if not data:
            return  # e.g. LAME held the chunk back; the vendor sends no empty frames [GUESS]
        faults = task.faults
        if faults.fail_after_bytes is not None and task.audio_bytes >= faults.fail_after_bytes:
            await self._fail(task.task_id, faults.fail_code, faults.fail_message)
            raise TaskEnded
        event = speech_events.sentence(task.task_id, index=index, kind=SENTENCE_SYNTHESIS)
        async with self._send_lock:
            # N x (sentence-synthesis event immediately followed by one binary frame):
            # docs/protocol.md#result-generated.
            await self._ws.send_str(event)
            await self._ws.send_bytes(data)
        task.first_audio_sent = True
        task.audio_bytes += len(data)
        self._stats.audio_bytes_sent += len(data)
        self._stats.audio_frames_sent += 1
        if faults.drop_after_bytes is not None and task.audio_bytes >= faults.drop_after_bytes:
            self._drop()
            raise TaskEnded
        if faults.stall_after_bytes is not None and task.audio_bytes >= faults.stall_after_bytes:
            self.stall()
            raise TaskEnded

    # -- ending tasks and connections ------------------------------------------------------

    async def _send(self, frame: str) -> None:
        async with self._send_lock:
            await self._ws.send_str(frame)

    async def _fail(self, task_id: str, code: str, message: str) -> None:
        """Send task-failed for ``task_id``, stop the runner and close the connection."""
        if self._closing:
            return
        self._closing = True
        self._disarm()
        async with self._send_lock:
            # Under the lock the runner is never halfway through an event+audio pair.
            self._cancel_runner()
            self._task = None
            self._stats.tasks_failed += 1
            with contextlib.suppress(ConnectionError):
                await self._ws.send_str(speech_events.task_failed(task_id, code, message))
        log.info("task %s failed: %s %s", task_id, code, message)
        self._start_close(_CLOSE_NORMAL, b"")

    async def _preempt(self) -> None:
        """End the active task silently so a new run-task can start (``preempt`` mode,
        docs/protocol.md#connection-reuse)."""
        async with self._send_lock:
            runner = self._runner
            self._cancel_runner()
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._task = None
        self._stats.tasks_cancelled += 1

    def _cancel_runner(self) -> None:
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
        self._runner = None

    def _drop(self) -> None:
        """Abort the TCP connection without a close frame (fault injection)."""
        self._closing = True
        self._disarm()
        self._stats.connections_dropped += 1
        if self._transport is not None:
            self._transport.abort()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_close(self, code: int, message: bytes) -> None:
        """Close in a task of its own, so neither the reader nor the runner waits on the peer."""
        self._closing = True
        self._disarm()
        if not self._close_started:
            self._close_started = True
            self._spawn(self._close(code, message), "devupstream-close")

    async def _close(self, code: int, message: bytes) -> None:
        try:
            await self._ws.close(code=code, message=message)
        except (ConnectionError, RuntimeError):
            self._abort()

    def _abort(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    async def shutdown(self) -> None:
        """Server stop: cancel the task, close with 1001 and abort if the peer does not answer."""
        self._closing = True
        self._disarm()
        self._cancel_runner()
        if self._stalled:
            self._abort()  # a silent server sends no close frame either
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._ws.close(code=_CLOSE_GOING_AWAY, message=b"server shutdown"), CLOSE_TIMEOUT_S
            )
        self._abort()

    async def _wind_down(self) -> None:
        self._closing = True
        self._disarm()
        self._cancel_runner()
        # Bounded: a failing task's last send and ws.close() (which gives up after CLOSE_TIMEOUT_S).
        pending = {task for task in self._background if not task.done()}
        while pending:
            await asyncio.wait(pending)
            pending = {task for task in self._background if not task.done()}
        if not self._ws.closed:
            self._abort()

    # -- timers ------------------------------------------------------------------------------

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_idle(self) -> None:
        """(Re)start the idle timer: the vendor closes connections without a task after 60 s
        (docs/protocol.md#timing-limits)."""
        self._disarm()
        if not self._closing:
            self._timer = self._loop.call_later(self._options.idle_timeout_s, self._on_idle)

    def _on_idle(self) -> None:
        self._timer = None
        if self._task is None and not self._closing:
            self._stats.idle_timeouts += 1
            # The vendor's close code is undocumented; 1000 is a guess (docs/protocol.md#close-codes).
            self._start_close(_CLOSE_NORMAL, b"")

    def _arm_gap(self, task: Task) -> None:
        """(Re)start the text-gap timer of a started task (23 s at the vendor,
        docs/protocol.md#timing-limits)."""
        self._disarm()
        if not self._closing and task.state is ServedTaskState.STARTED:
            self._timer = self._loop.call_later(self._options.text_gap_timeout_s, self._on_gap, task)

    def _on_gap(self, task: Task) -> None:
        self._timer = None
        if self._task is task and task.state is ServedTaskState.STARTED and not self._closing:
            self._stats.text_gap_timeouts += 1
            gap_s = self._options.text_gap_timeout_s
            message = (
                ERROR_TEXT_GAP_TIMEOUT
                if gap_s == TEXT_GAP_LIMIT_S
                else f"request timeout after {gap_s:g} seconds."
            )
            self._spawn(self._fail(task.task_id, CODE_GAP_TIMEOUT, message), "devupstream-gap")
