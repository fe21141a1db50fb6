"""When to try the upstream again: exponential backoff with full jitter, one layer only.

Both servicers (synthesis and generation) ask :meth:`RetryPolicy.delay` after each failed
attempt; the generation servicer also records every attempt in an :class:`AttemptLog`
(outcome and the delay that followed), which telemetry can turn into span events. A retry
happens only for a retryable failure, while nothing has been sent to the caller, below the
attempt limit, and when the delay still ends before the caller's deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0

    def delay(
        self,
        *,
        attempts_made: int,
        retryable: bool,
        sent_anything: bool,
        remaining_s: float | None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None to give up now."""
        if not retryable or sent_anything or attempts_made >= self.max_attempts:
            return None
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempts_made - 1))
        # Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): spreads retries
        # of many callers throttled at once over the whole window instead of its upper half.
        delay_s = (rng or random).uniform(0, ceiling)
        if remaining_s is not None and remaining_s <= delay_s:
            return None
        return delay_s


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream attempt: ``outcome`` is ``"OK"`` or the status code name it failed with."""

    number: int
    outcome: str
    duration_s: float
    message: str = ""
    retry_delay_s: float | None = None
    """The backoff slept after this attempt; None when no retry followed."""


@dataclass(slots=True)
class AttemptLog:
    attempts: list[Attempt] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.attempts)

    def succeeded(self, duration_s: float) -> None:
        self.attempts.append(Attempt(len(self.attempts) + 1, "OK", duration_s))

    def failed(
        self, code: grpc.StatusCode, message: str, duration_s: float, retry_delay_s: float | None
    ) -> None:
        self.attempts.append(Attempt(len(self.attempts) + 1, code.name, duration_s, message, retry_delay_s))
