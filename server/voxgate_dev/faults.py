"""Fault injection for the local upstream: what to break, how often, and for how long.

:class:`Faults` is the frozen description a test or an operator hands in (flags, the
``PUT /_dev/faults`` endpoint or :meth:`DevUpstream.set_faults`). :class:`FaultSwitch`
decides, per connection and per task, whether that one is hit, and hands the caller the
snapshot to apply. A task keeps its snapshot to the end, so switching faults at runtime
never changes a task halfway through.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voxgate.settings import (
    Invalid,
    at_least,
    integer,
    non_empty,
    number,
    setting,
    switch,
    text,
    validate,
    within,
)

DEFAULT_FAIL_CODE = "InternalError"
DEFAULT_FAIL_MESSAGE = "local upstream: injected failure"


@dataclass(frozen=True)
class GenerationFaults:
    """What to break on the HTTP generation endpoint; drawn once per generation request."""

    first_byte_delay_ms: int = setting(
        0,
        integer,
        "generation: delay before the response",
        check=at_least(0),
        flag="--generation-first-byte-delay-ms",
        metavar="MS",
    )
    """Delay before the response starts (headers and all)."""
    error_status: int | None = setting(
        None,
        integer,
        "generation: answer with this HTTP error status (429 throttling, 500 internal error, ...)",
        check=within(400, 599),
        flag="--generation-error-status",
        metavar="STATUS",
    )
    """Answer with this HTTP status and DashScope's error body for it (400 InvalidParameter,
    401 InvalidApiKey, 403 AccessDenied, 429 Throttling.RateQuota, 500 InternalError, ...);
    SSE-bodied for streaming requests, as the service does (docs/protocol.md#error-bodies)."""
    error_after_tokens: int | None = setting(
        None,
        integer,
        "generation: event:error after this many streamed tokens (0: before the first)",
        check=at_least(0),
        flag="--generation-error-after-tokens",
        metavar="N",
    )
    """Streaming: send ``event:error`` (``error_code``/``error_message``) after this many
    tokens, then end the stream; 0 errs before any token. Non-streaming: HTTP 500 with that code."""
    drop_after_tokens: int | None = setting(
        None,
        integer,
        "generation: abort the TCP connection after this many tokens (0: before any response)",
        check=at_least(0),
        flag="--generation-drop-after-tokens",
        metavar="N",
    )
    """Abort the TCP connection after this many tokens; 0 aborts before any response."""
    error_code: str = setting(
        DEFAULT_FAIL_CODE,
        text,
        "generation: code of the event:error",
        check=non_empty,
        flag="--generation-error-code",
        metavar="CODE",
    )
    error_message: str = setting(
        DEFAULT_FAIL_MESSAGE,
        text,
        "generation: message of the event:error",
        flag="--generation-error-message",
        metavar="TEXT",
    )

    def __post_init__(self) -> None:
        validate(self)

    @property
    def any(self) -> bool:
        return (
            self.first_byte_delay_ms > 0
            or self.error_status is not None
            or self.error_after_tokens is not None
            or self.drop_after_tokens is not None
        )

    @classmethod
    def from_json(cls, data: object) -> GenerationFaults:
        if not isinstance(data, Mapping):
            raise ValueError("generation must be an object of GenerationFaults fields")
        try:
            return cls(**_checked_fields(cls, data, "generation."))
        except Invalid as exc:
            raise Invalid(f"generation.{exc.field}", exc.reason) from None


@dataclass(frozen=True)
class Faults:
    """What to break. Every field is neutral by default, so ``Faults()`` breaks nothing.

    Connection faults (``connect_delay_ms``, ``reject_handshake_status``) are drawn once
    per WebSocket upgrade; task faults (everything else) once per run-task; ``generation``
    faults once per generation request. ``probability`` and ``times`` apply to each scope
    separately: ``times=1`` hits the next connection *and* the next task *and* the next
    generation request, if faults of those kinds are set.
    """

    connect_delay_ms: int = setting(
        0,
        integer,
        "delay answering the WS upgrade",
        check=at_least(0),
        metavar="MS",
    )
    """Delay before answering the WS upgrade."""
    task_started_delay_ms: int = setting(
        0,
        integer,
        "delay between run-task and task-started",
        check=at_least(0),
        metavar="MS",
    )
    """Delay between run-task and task-started."""
    first_packet_delay_ms: int = setting(
        0,
        integer,
        "least delay from text available to first audio frame",
        check=at_least(0),
        metavar="MS",
    )
    """Least delay between a sentence's text being available and the task's first audio frame."""
    drop_after_bytes: int | None = setting(
        None,
        integer,
        "abort the TCP connection after this many audio bytes of a task (0: right after task-started)",
        check=at_least(0),
        metavar="BYTES",
    )
    """Abort the TCP connection (no close frame) once this many audio bytes of a task were
    sent; 0 aborts right after task-started."""
    fail_after_bytes: int | None = setting(
        None,
        integer,
        "send task-failed after this many audio bytes of a task (0: instead of the first audio)",
        check=at_least(0),
        metavar="BYTES",
    )
    """Send task-failed (``fail_code``/``fail_message``) once this many audio bytes were sent,
    then close; 0 fails instead of the first audio frame."""
    fail_code: str = setting(
        DEFAULT_FAIL_CODE,
        text,
        "error_code of injected failures",
        check=non_empty,
        metavar="CODE",
    )
    fail_message: str = setting(
        DEFAULT_FAIL_MESSAGE,
        text,
        "error_message of injected failures",
        check=None,
        metavar="TEXT",
    )
    throttle: bool = switch("answer every run-task with task-failed Throttling.RateQuota")
    """Answer run-task with task-failed ``Throttling.RateQuota``, then close."""
    reject_handshake_status: int | None = setting(
        None,
        integer,
        "refuse WS upgrades with this HTTP error status",
        check=within(400, 599),
        metavar="STATUS",
    )
    """Refuse the WS upgrade with this HTTP status (e.g. 401, 403, 503)."""
    close_after_handshake: bool = switch(
        "accept WS upgrades, then close at once with 1008 and the fail code/message (quota)"
    )
    """Accept the WS upgrade, then close at once with 1008 and ``fail_code: fail_message`` as
    the reason: a refusal the handshake did not express (quota, arrears); the vendor's form is
    unknown (docs/protocol.md#close-codes)."""
    stall_after_handshake: bool = switch(
        "accept WS upgrades, then go silent: no reads, no pongs, no close (half-open)"
    )
    """Accept the WS upgrade, then go silent: stop reading (so no pongs) and never send or
    close (no FIN) — a half-open peer the client must detect by itself."""
    stall_after_bytes: int | None = setting(
        None,
        integer,
        "go silent (half-open) after this many audio bytes of a task (0: right after task-started)",
        check=at_least(0),
        metavar="BYTES",
    )
    """Go silent like ``stall_after_handshake`` once this many audio bytes of a task were sent;
    0 stalls right after task-started."""
    probability: float = setting(
        1.0,
        number,
        "chance that a connection/task is hit by the faults",
        check=within(0, 1),
        metavar="P",
        flag="--fault-probability",
    )
    """Chance that a connection/task is hit (seeded RNG, option ``seed``)."""
    times: int | None = setting(
        None,
        integer,
        "hit only the next N connections/tasks/generation requests",
        check=at_least(0),
        metavar="N",
        flag="--fault-times",
        default_text="always",
    )
    """Hit only the next N connections/tasks/generation requests, then switch off; None means always."""
    generation: GenerationFaults = field(default_factory=GenerationFaults)
    """Faults of the HTTP generation endpoint (``probability`` and ``times`` apply to them too)."""

    def __post_init__(self) -> None:
        validate(self)

    @property
    def has_connection_faults(self) -> bool:
        return (
            self.connect_delay_ms > 0
            or self.reject_handshake_status is not None
            or self.close_after_handshake
            or self.stall_after_handshake
        )

    @property
    def has_task_faults(self) -> bool:
        return (
            self.task_started_delay_ms > 0
            or self.first_packet_delay_ms > 0
            or self.drop_after_bytes is not None
            or self.fail_after_bytes is not None
            or self.stall_after_bytes is not None
            or self.throttle
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Build from a JSON object; raises ``ValueError`` naming an unknown or bad field."""
        values = _checked_fields(cls, {k: v for k, v in data.items() if k != "generation"}, "")
        if "generation" in data:
            values["generation"] = GenerationFaults.from_json(data["generation"])
        return cls(**values)


NO_FAULTS = Faults()


def _checked_fields(cls: type, data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(prefix + name for name in unknown)}")
    for name, value in data.items():
        _check_json_type(prefix + name, value, known[name].type)
    return dict(data)


def _check_json_type(name: str, value: object, annotation: object) -> None:
    # Annotations are strings under ``from __future__ import annotations``.
    text = str(annotation)
    if value is None:
        if "None" not in text:
            raise ValueError(f"{name} must not be null")
        return
    if text.startswith("bool"):
        ok = isinstance(value, bool)
    elif text.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif text.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{name} has the wrong type: {value!r} (expected {text})")


class FaultSwitch:
    """Draws, per connection and per task, whether the current :class:`Faults` apply.

    Thread-safe, because tests may switch faults from another thread than the loop's.
    """

    def __init__(self, faults: Faults, *, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults = faults
        self._connections_left = faults.times
        self._tasks_left = faults.times
        self._generations_left = faults.times

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults) -> None:
        """Replace the faults; ``times`` counts again from the new value."""
        with self._lock:
            self._faults = faults
            self._connections_left = faults.times
            self._tasks_left = faults.times
            self._generations_left = faults.times

    def for_connection(self) -> Faults:
        """Faults for a new connection: the current ones if hit, else :data:`NO_FAULTS`."""
        with self._lock:
            faults = self._faults
            if not faults.has_connection_faults or not self._draw(self._connections_left):
                return NO_FAULTS
            if self._connections_left is not None:
                self._connections_left -= 1
            return faults

    def for_task(self) -> Faults:
        """Faults for a new task: the current ones if hit, else :data:`NO_FAULTS`."""
        with self._lock:
            faults = self._faults
            if not faults.has_task_faults or not self._draw(self._tasks_left):
                return NO_FAULTS
            if self._tasks_left is not None:
                self._tasks_left -= 1
            return faults

    def for_generation(self) -> GenerationFaults:
        """Faults for a new generation request, or neutral ones if it is not hit."""
        with self._lock:
            faults = self._faults
            if not faults.generation.any or not self._draw(self._generations_left):
                return NO_FAULTS.generation
            if self._generations_left is not None:
                self._generations_left -= 1
            return faults.generation

    def _draw(self, left: int | None) -> bool:
        if left is not None and left <= 0:
            return False
        probability = self._faults.probability
        if probability >= 1.0:
            return True
        return self._rng.random() < probability
