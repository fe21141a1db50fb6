"""The one retry layer: exponential backoff with full jitter, run by :func:`run_with_retries`.

Every servicer hands :func:`run_with_retries` one attempt of its RPC (whatever that attempt
does: a unary call, a stream it forwards, a bidirectional exchange) and its feature's classifier.
Another attempt follows only for a retryable failure, while nothing has been sent to the caller,
below the attempt limit, and when the backoff ends at least :data:`RETRY_HEADROOM_S` before
the caller's deadline. Each retry is a ``voxgate.retry`` event on the RPC's span.

"Sent" is the servicer's to define: a stream counts its first message out, and an RPC that
consumes a request stream it cannot replay counts that too, since another attempt would
start without it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from opentelemetry import trace

from voxgate.observability import names
from voxgate.rpc.errors import Classifier, Failure

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_HEADROOM_S = 0.25
"""A retry must leave this much of the caller's deadline after its backoff for the attempt
itself (a pooled borrow and a run-task round trip, or a connect and the first SSE bytes).
An attempt that cannot finish in time only turns the real reason (throttled, unavailable)
into DEADLINE_EXCEEDED, so the caller is told the real reason now instead."""


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
        """Seconds to sleep before the next attempt, or None to give up now.

        ``remaining_s`` is the time the backoff may use (None without a deadline)."""
        if not retryable or sent_anything or attempts_made >= self.max_attempts:
            return None
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempts_made - 1))
        # Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): spreads retries
        # of many callers throttled at once over the whole window instead of its upper half.
        delay_s = (rng or random).uniform(0, ceiling)
        if remaining_s is not None and remaining_s <= delay_s:
            return None
        return delay_s


class GaveUp(Exception):
    """The RPC failed for good: end it with :attr:`failure` (the last attempt's, classified).

    ``__cause__`` is the last attempt's exception; :attr:`attempts` how many were made."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.attempts = attempts


async def run_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    classify: Classifier,
    sent_anything: Callable[[], bool],
    output: str,
    deadline: float | None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Await ``attempt(n)`` for n = 1, 2, … until one returns; return its result or raise :class:`GaveUp`.

    ``sent_anything()`` says whether the caller has received anything yet (a retry then would
    duplicate it); ``output`` names what it receives ("audio", "text") in the log. ``deadline``
    is the caller's deadline on ``clock`` (default: the running loop's clock), None without one;
    attempts bound their own duration, this only keeps backoffs short of it. Cancellation and
    :class:`grpc.aio.AbortError` (the attempt ended the RPC itself) pass through untouched.
    """
    now = clock or asyncio.get_running_loop().time
    attempts_made = 0
    while True:
        attempts_made += 1
        try:
            return await attempt(attempts_made)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            failure = classify(exc)
            remaining_s = None if deadline is None else deadline - now() - RETRY_HEADROOM_S
            delay_s = policy.delay(
                attempts_made=attempts_made,
                retryable=failure.retryable,
                sent_anything=sent_anything(),
                remaining_s=remaining_s,
                rng=rng,
            )
            if delay_s is None:
                raise GaveUp(failure, attempts_made) from exc
        _record_retry(attempts_made, failure.message, delay_s)
        log.info(
            "attempt %d failed before any %s (%s); retrying in %.2fs",
            attempts_made,
            output,
            failure.message,
            delay_s,
        )
        await sleep(delay_s)


def deadline_of(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """The caller's deadline on the running loop's clock, or None if it set none."""
    remaining_s: float | None = context.time_remaining()  # the stubs say float; grpc says None
    return None if remaining_s is None else asyncio.get_running_loop().time() + remaining_s


def _record_retry(failed_attempt: int, reason: str, delay_s: float) -> None:
    """On the current (RPC) span: attempt ``failed_attempt`` failed for ``reason``; the next one
    starts in ``delay_s``."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            names.EVENT_RETRY,
            {
                names.RETRY_ATTEMPT: failed_attempt,
                names.RETRY_REASON: reason,
                names.RETRY_DELAY_MS: delay_s * 1000,
            },
        )
