"""Sans-I/O core of the DashScope CosyVoice duplex WebSocket protocol.

Nothing here touches a socket. :class:`SynthesisTask` is the state machine of one
task on one connection::

    IDLE --run-task--> STARTING --task-started--> STARTED
    STARTED --continue-task--> STARTED
    STARTED --finish-task--> FINISHING --task-finished--> FINISHED
    (STARTING | STARTED | FINISHING) --task-failed--> FAILED

The adapter (``connection.py``) asks the task for the frames to send
(:meth:`~SynthesisTask.run_task`, :meth:`~SynthesisTask.continue_task`,
:meth:`~SynthesisTask.finish_task`) and feeds it every frame it receives
(:meth:`~SynthesisTask.receive_text`, :meth:`~SynthesisTask.receive_audio`). An
illegal step raises :class:`ProtocolError`; the connection is then unusable and
must be closed, never reused.

Wire facts (exact JSON shape, key order, header names) are those of
``docs/protocol.md#cosyvoice-duplex-websocket``, recorded from dashscope 2.0.2 in ``tests/fixtures/``.
The embedded upstream shares the constants of this module, nothing else.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --- constants shared with the embedded upstream -----------------------------------

WS_PATH = "/api-ws/v1/inference"
"""Path of the duplex endpoint; the vendor docs' samples also use a trailing slash."""

ACTION_RUN_TASK = "run-task"
ACTION_CONTINUE_TASK = "continue-task"
ACTION_FINISH_TASK = "finish-task"

EVENT_TASK_STARTED = "task-started"
EVENT_RESULT_GENERATED = "result-generated"
EVENT_TASK_FINISHED = "task-finished"
EVENT_TASK_FAILED = "task-failed"

SENTENCE_BEGIN = "sentence-begin"
SENTENCE_SYNTHESIS = "sentence-synthesis"
SENTENCE_END = "sentence-end"

STREAMING_DUPLEX = "duplex"
TASK_GROUP = "audio"
TASK = "tts"
FUNCTION = "SpeechSynthesizer"

FORMATS = ("pcm", "wav", "mp3", "opus")
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
OPUS_SAMPLE_RATES = (8000, 16000, 24000, 48000)

MAX_TEXT_CHARS_PER_CONTINUE = 20_000
"""Weighted characters allowed in one continue-task (docs/protocol.md#text-limits)."""
MAX_TEXT_CHARS_PER_TASK = 200_000
"""Weighted characters allowed in one task (docs/protocol.md#text-limits)."""
TEXT_GAP_LIMIT_S = 23.0
"""The service fails a task when no client frame arrives for 23 s (docs/protocol.md#timing-limits)."""
IDLE_CONNECTION_LIMIT_S = 60.0
"""The service closes a connection idle for 60 s after a task (docs/protocol.md#timing-limits)."""

# Error strings of the service (docs/protocol.md#error-strings); the embedded upstream uses
# them verbatim so clients can be tested against the real messages.
ERROR_INVALID_ACTION_RUN_TASK = "Invalid action('run-task')! Please follow the protocol!"
ERROR_TEXT_GAP_TIMEOUT = "request timeout after 23 seconds."
ERROR_RATE_LIMITED = "Requests rate limit exceeded, please try again later."
ERROR_INVALID_TEXT = "Please ensure input text is valid."
ERROR_INVALID_VOICE = "Request voice is invalid!"


def weighted_length(text: str) -> int:
    """Characters as the service counts them: CJK ideographs count 2, others 1."""
    return sum(2 if _is_cjk(ch) else 1 for ch in text)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= code <= 0x4DBF  # Extension A
        or 0x20000 <= code <= 0x2FA1F  # Extensions B-F, compatibility supplement
        or 0xF900 <= code <= 0xFAFF  # Compatibility Ideographs
        or 0x3040 <= code <= 0x30FF  # Hiragana, Katakana
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
    )


def new_task_id() -> str:
    """A task id as the SDK makes it: uuid4 hex, 32 characters, no dashes."""
    return uuid.uuid4().hex


def dumps(message: Mapping[str, Any]) -> str:
    """Serialise a client frame exactly as the SDK does (``json.dumps`` defaults)."""
    return json.dumps(message)


# --- task parameters ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SynthesisParams:
    """Parameters of one run-task, already validated by the caller."""

    model: str
    voice: str
    format: str = "wav"
    sample_rate: int = 22050
    volume: int = 50
    rate: float = 1.0
    pitch: float = 1.0
    seed: int = 0
    bit_rate: int | None = None
    enable_ssml: bool = False
    instruction: str = ""
    language_hints: tuple[str, ...] = ()
    word_timestamp_enabled: bool = False
    enable_markdown_filter: bool = False

    def wire_parameters(self) -> dict[str, Any]:
        """``payload.parameters`` in the SDK's key order (docs/protocol.md#run-task)."""
        params: dict[str, Any] = {
            "voice": self.voice,
            "volume": self.volume,
            "text_type": "PlainText",
            "sample_rate": self.sample_rate,
            "rate": self.rate,
            "format": self.format,
            "pitch": self.pitch,
            "seed": self.seed,
            "type": 0,
        }
        if self.format == "opus" and self.bit_rate is not None:
            params["bit_rate"] = self.bit_rate
        if self.enable_markdown_filter:
            params["enable_markdown_filter"] = True
        if self.word_timestamp_enabled:
            params["word_timestamp_enabled"] = True
        if self.enable_ssml:
            params["enable_ssml"] = True
        if self.instruction:
            params["instruction"] = self.instruction
        if self.language_hints:
            params["language_hints"] = list(self.language_hints)
        return params


# --- events ----------------------------------------------------------------------------


class ProtocolError(Exception):
    """The peer or the caller broke the protocol; the connection must be closed."""


class TaskFailure(Exception):
    """The service answered ``task-failed``; it closes the connection afterwards
    (docs/protocol.md#task-failed)."""

    def __init__(self, task_id: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.task_id = task_id
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TaskStarted:
    task_id: str


@dataclass(frozen=True, slots=True)
class SentenceProgress:
    """A ``result-generated`` event; ``characters`` is cumulative when present."""

    kind: str
    index: int | None
    characters: int | None
    original_text: str | None


@dataclass(frozen=True, slots=True)
class AudioReceived:
    data: bytes


@dataclass(frozen=True, slots=True)
class TaskFinished:
    task_id: str
    request_id: str
    characters: int | None


Event = TaskStarted | SentenceProgress | AudioReceived | TaskFinished


class TaskState(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    STARTED = "started"
    FINISHING = "finishing"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (TaskState.FINISHED, TaskState.FAILED)


@dataclass(slots=True)
class SynthesisTask:
    """One task's state machine. Create one per task; never reuse it."""

    params: SynthesisParams
    task_id: str = field(default_factory=new_task_id)
    state: TaskState = TaskState.IDLE
    characters: int | None = None
    audio_bytes: int = 0
    request_id: str = ""
    """The service's ``request_uuid`` for the task, known once it finished."""

    # -- frames to send ----------------------------------------------------------------

    def run_task(self) -> str:
        """The run-task frame. Next: wait for :class:`TaskStarted` before sending more."""
        self._require(TaskState.IDLE, ACTION_RUN_TASK)
        self.state = TaskState.STARTING
        return dumps(
            {
                "header": self._header(ACTION_RUN_TASK),
                "payload": {
                    "model": self.params.model,
                    "task_group": TASK_GROUP,
                    "task": TASK,
                    "function": FUNCTION,
                    "input": {},
                    "parameters": self.params.wire_parameters(),
                },
            }
        )

    def continue_task(self, text: str) -> str:
        """A continue-task frame carrying ``text``; legal only once the task started."""
        self._require(TaskState.STARTED, ACTION_CONTINUE_TASK)
        if not text:
            raise ProtocolError("continue-task needs non-empty text")
        return dumps(
            {
                "header": self._header(ACTION_CONTINUE_TASK),
                "payload": {
                    "model": self.params.model,
                    "task_group": TASK_GROUP,
                    "task": TASK,
                    "function": FUNCTION,
                    "input": {"text": text},
                },
            }
        )

    def finish_task(self) -> str:
        """The finish-task frame. Next: read until :class:`TaskFinished` or a failure."""
        self._require(TaskState.STARTED, ACTION_FINISH_TASK)
        self.state = TaskState.FINISHING
        return dumps({"header": self._header(ACTION_FINISH_TASK), "payload": {"input": {}}})

    # -- frames received ---------------------------------------------------------------

    def receive_text(self, frame: str) -> Event:
        """Parse a server text frame. Raises :class:`TaskFailure` on ``task-failed``."""
        try:
            message = json.loads(frame)
            header = message["header"]
            event = header["event"]
        except (ValueError, KeyError, TypeError) as exc:
            raise self._fail_protocol(f"malformed event frame: {frame[:200]!r}") from exc
        event_task_id = header.get("task_id")
        # The SDK never checks this (docs/protocol.md#connection-reuse); a late event of an
        # earlier task on a reused socket would otherwise be taken for ours.
        if event_task_id is not None and event_task_id != self.task_id:
            raise self._fail_protocol(f"event {event!r} for task {event_task_id}, expected {self.task_id}")
        payload = message.get("payload") or {}

        if event == EVENT_TASK_FAILED:
            if self.state not in (TaskState.STARTING, TaskState.STARTED, TaskState.FINISHING):
                raise self._fail_protocol(f"task-failed in state {self.state.value}")
            self.state = TaskState.FAILED
            raise TaskFailure(
                self.task_id,
                str(header.get("error_code") or "Unknown"),
                str(header.get("error_message") or ""),
            )
        if event == EVENT_TASK_STARTED:
            self._require_event_in((TaskState.STARTING,), event)
            self.state = TaskState.STARTED
            return TaskStarted(self.task_id)
        if event == EVENT_RESULT_GENERATED:
            self._require_event_in((TaskState.STARTED, TaskState.FINISHING), event)
            return self._sentence(payload)
        if event == EVENT_TASK_FINISHED:
            self._require_event_in((TaskState.FINISHING,), event)
            self.state = TaskState.FINISHED
            self._note_usage(payload)
            attributes = header.get("attributes") or {}
            self.request_id = str(attributes.get("request_uuid") or "")
            return TaskFinished(self.task_id, self.request_id, self.characters)
        raise self._fail_protocol(f"unknown event {event!r}")

    def receive_audio(self, data: bytes) -> AudioReceived:
        """Account a binary audio frame; legal between task-started and the end."""
        self._require_event_in((TaskState.STARTED, TaskState.FINISHING), "audio")
        self.audio_bytes += len(data)
        return AudioReceived(data)

    # -- helpers ---------------------------------------------------------------------------

    def _header(self, action: str) -> dict[str, str]:
        return {"action": action, "task_id": self.task_id, "streaming": STREAMING_DUPLEX}

    def _sentence(self, payload: Mapping[str, Any]) -> SentenceProgress:
        output = payload.get("output") or {}
        sentence = output.get("sentence") or {}
        self._note_usage(payload)
        index = sentence.get("index")
        return SentenceProgress(
            kind=str(output.get("type") or ""),
            index=index if isinstance(index, int) else None,
            characters=self.characters,
            original_text=output.get("original_text"),
        )

    def _note_usage(self, payload: Mapping[str, Any]) -> None:
        # usage may come in result-generated or task-finished; the last one counts
        # (docs/protocol.md#result-generated)
        usage = payload.get("usage") or {}
        characters = usage.get("characters")
        if isinstance(characters, int):
            self.characters = characters

    def _require(self, expected: TaskState, action: str) -> None:
        if self.state is not expected:
            raise ProtocolError(f"cannot send {action} in state {self.state.value}")

    def _require_event_in(self, expected: tuple[TaskState, ...], event: str) -> None:
        if self.state not in expected:
            raise self._fail_protocol(f"unexpected {event} in state {self.state.value}")

    def _fail_protocol(self, reason: str) -> ProtocolError:
        self.state = TaskState.FAILED
        return ProtocolError(reason)
