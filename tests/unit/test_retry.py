"""The one retry runner, on virtual time: what is retried, what never is, and when it gives up."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from voxgate.rpc.errors import Failure, classifier
from voxgate.rpc.retry import RETRY_HEADROOM_S, GaveUp, RetryPolicy, run_with_retries

BACKOFF_S = 1.0
"""Every backoff in these tests: the jitter below always picks the top of the window."""


class TopOfWindow(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def feature_failure(exc: BaseException) -> Failure | None:
    if isinstance(exc, Transient):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"transient: {exc}", retryable=True)
    if isinstance(exc, Permanent):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, f"permanent: {exc}")
    return None


classify = classifier(feature_failure)


class VirtualTime:
    """A clock that only moves when the runner sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        self.sleeps.append(delay_s)
        self.now_s += delay_s


class Script:
    """An attempt that fails with the given exceptions in turn, then returns "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.attempts: list[int] = []

    async def __call__(self, attempt: int) -> str:
        self.attempts.append(attempt)
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def run(
    script: Script,
    time: VirtualTime,
    *,
    max_attempts: int = 5,
    deadline_after_s: float | None = None,
    sent_anything: bool = False,
) -> str:
    return await run_with_retries(
        script,
        policy=RetryPolicy(max_attempts, initial_backoff_s=BACKOFF_S, max_backoff_s=BACKOFF_S),
        classify=classify,
        sent_anything=lambda: sent_anything,
        output="audio",
        deadline=None if deadline_after_s is None else time.now_s + deadline_after_s,
        clock=time.clock,
        sleep=time.sleep,
        rng=TopOfWindow(),
    )


async def test_a_retryable_failure_is_retried_after_a_backoff() -> None:
    time, script = VirtualTime(), Script(Transient("a"), Transient("b"))
    assert await run(script, time) == "ok"
    assert script.attempts == [1, 2, 3]
    assert time.sleeps == [BACKOFF_S, BACKOFF_S]


async def test_a_failure_that_is_not_retryable_ends_at_once_with_its_classification() -> None:
    time, script = VirtualTime(), Script(Transient("a"), Permanent("bad field"))
    with pytest.raises(GaveUp) as info:
        await run(script, time)
    assert script.attempts == [1, 2] and time.sleeps == [BACKOFF_S]
    assert info.value.attempts == 2
    assert info.value.failure == Failure(grpc.StatusCode.INVALID_ARGUMENT, "permanent: bad field")
    assert isinstance(info.value.__cause__, Permanent)


async def test_an_unknown_exception_is_internal_and_not_retried() -> None:
    time, script = VirtualTime(), Script(KeyError("x"))
    with pytest.raises(GaveUp) as info:
        await run(script, time)
    assert (info.value.failure.code, info.value.attempts, time.sleeps) == (grpc.StatusCode.INTERNAL, 1, [])


async def test_nothing_is_retried_once_something_was_sent() -> None:
    time, script = VirtualTime(), Script(Transient("mid-stream"))
    with pytest.raises(GaveUp) as info:
        await run(script, time, sent_anything=True)
    assert script.attempts == [1] and time.sleeps == []
    assert info.value.failure.retryable  # retryable in itself; what was sent forbids it


async def test_it_stops_at_max_attempts_with_the_last_failure() -> None:
    time = VirtualTime()
    script = Script(*(Transient(str(n)) for n in range(1, 10)))
    with pytest.raises(GaveUp) as info:
        await run(script, time, max_attempts=3)
    assert script.attempts == [1, 2, 3] and len(time.sleeps) == 2
    assert (info.value.attempts, info.value.failure.message) == (3, "transient: 3")


async def test_it_retries_while_the_backoff_ends_before_the_deadline_minus_the_headroom() -> None:
    time, script = VirtualTime(), Script(Transient("a"))
    assert await run(script, time, deadline_after_s=BACKOFF_S + RETRY_HEADROOM_S + 0.01) == "ok"
    assert time.sleeps == [BACKOFF_S]


async def test_it_gives_up_when_the_backoff_would_eat_into_the_headroom() -> None:
    # The backoff alone would fit before the deadline; the attempt after it would not.
    time, script = VirtualTime(), Script(Transient("a"))
    with pytest.raises(GaveUp) as info:
        await run(script, time, deadline_after_s=BACKOFF_S + RETRY_HEADROOM_S - 0.01)
    assert script.attempts == [1] and time.sleeps == []
    assert info.value.failure.message == "transient: a"  # the real reason, not DEADLINE_EXCEEDED


async def test_the_deadline_is_read_again_after_each_attempt() -> None:
    time = VirtualTime()
    # Room for one backoff, not two: the second failure comes after the first backoff was slept.
    script = Script(Transient("a"), Transient("b"))
    with pytest.raises(GaveUp) as info:
        await run(script, time, deadline_after_s=2 * BACKOFF_S + RETRY_HEADROOM_S - 0.01)
    assert script.attempts == [1, 2] and time.sleeps == [BACKOFF_S]
    assert info.value.failure.message == "transient: b"


@pytest.mark.parametrize("escape", [asyncio.CancelledError(), grpc.aio.AbortError()])
async def test_cancellation_and_an_abort_pass_through_untouched(escape: BaseException) -> None:
    time, script = VirtualTime(), Script(escape)
    with pytest.raises(type(escape)):
        await run(script, time)
    assert script.attempts == [1] and time.sleeps == []


async def test_each_retry_is_an_event_on_the_current_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    time, script = VirtualTime(), Script(Transient("a"), Transient("b"))
    with provider.get_tracer("test").start_as_current_span("rpc"):
        await run(script, time)
    [span] = exporter.get_finished_spans()
    assert [(event.name, dict(event.attributes or {})) for event in span.events] == [
        (
            "voxgate.retry",
            {
                "voxgate.retry.attempt": attempt,
                "voxgate.retry.reason": f"transient: {reason}",
                "voxgate.retry.delay_ms": BACKOFF_S * 1000,
            },
        )
        for attempt, reason in [(1, "a"), (2, "b")]
    ]
    provider.shutdown()
