"""The tasks a local upstream session serves: their state and what they hold
(docs/protocol.md#task-lifecycle)."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from .audio import Encoder
from .faults import Faults
from .speech_request import TaskSpec
from .text import SentenceBuffer


def invalid_action(action: str) -> str:
    """The vendor's message for a command the task state does not allow (docs/protocol.md#error-strings)."""
    return f"Invalid action('{action}')! Please follow the protocol!"


class ServedTaskState(enum.Enum):
    STARTING = "starting"  # run-task accepted, task-started not sent yet
    STARTED = "started"  # continue-task and finish-task allowed
    FINISHING = "finishing"  # finish-task received, draining sentences
    ENDED = "ended"


@dataclass(slots=True)
class Sentence:
    text: str
    available_at: float


@dataclass(slots=True)
class Task:
    task_id: str
    spec: TaskSpec
    faults: Faults
    encoder: Encoder
    state: ServedTaskState = ServedTaskState.STARTING
    buffer: SentenceBuffer = field(default_factory=SentenceBuffer)
    queue: asyncio.Queue[Sentence | None] = field(default_factory=asyncio.Queue)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    text_requests: int = 0
    text_chars: int = 0
    sentences_queued: int = 0
    next_index: int = 0
    characters: int = 0
    audio_bytes: int = 0
    first_audio_sent: bool = False


class TaskEnded(Exception):
    """Unwinds a runner whose task was ended by a fault (the connection is going away)."""
