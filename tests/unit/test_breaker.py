"""The pool's circuit breaker on its own: backoff, rejection, serving state.

Time is virtual (an injected clock moved by hand) and the jitter comes from a seeded
random generator; nothing here sleeps or needs an event loop.
"""

from __future__ import annotations

import random

import pytest

from voxgate.pool import Breaker, HealthChanged


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_breaker(clock: Clock, initial_s: float = 1.0, max_s: float = 8.0) -> Breaker:
    return Breaker(backoff_initial_s=initial_s, backoff_max_s=max_s, clock=clock, rng=random.Random(7))


def rejection(breaker: Breaker) -> tuple[str | None, int]:
    """The rejection reason and the consecutive failures, read fresh."""
    return breaker.rejected_reason, breaker.consecutive_failures


def last_error(breaker: Breaker) -> Exception | None:
    return breaker.last_error


def test_a_new_breaker_connects_at_once_and_does_not_serve_yet(clock: Clock) -> None:
    breaker = make_breaker(clock)
    assert not breaker.backing_off and breaker.next_connect_at == 0.0
    assert breaker.rejected_reason is None and breaker.last_error is None
    assert not breaker.serving


def test_backoff_doubles_per_consecutive_failure_up_to_the_ceiling(clock: Clock) -> None:
    breaker = make_breaker(clock, initial_s=1.0, max_s=8.0)
    for ceiling in (1.0, 2.0, 4.0, 8.0, 8.0):
        backoff_s = breaker.connect_failed(OSError("down"), fatal=False)
        # Equal jitter: within [ceiling/2, ceiling], never zero.
        assert ceiling / 2 <= backoff_s <= ceiling
        assert breaker.next_connect_at == clock.now + backoff_s
    assert breaker.consecutive_failures == 5


def test_backing_off_ends_when_the_clock_reaches_next_connect_at(clock: Clock) -> None:
    breaker = make_breaker(clock)
    backoff_s = breaker.connect_failed(OSError("down"), fatal=False)
    assert breaker.backing_off
    clock.now += backoff_s / 2
    assert breaker.backing_off
    clock.now += backoff_s / 2
    assert not breaker.backing_off


def test_a_success_resets_the_backoff_and_the_last_error(clock: Clock) -> None:
    breaker = make_breaker(clock)
    error = OSError("down")
    for _ in range(3):
        breaker.connect_failed(error, fatal=False)
    assert breaker.last_error is error and rejection(breaker) == (None, 3)
    breaker.connect_succeeded()
    assert rejection(breaker) == (None, 0)
    assert not breaker.backing_off and breaker.next_connect_at == 0.0
    assert last_error(breaker) is None
    assert breaker.connect_failed(error, fatal=False) <= 1.0  # back to the first step


def test_a_fatal_failure_rejects_and_goes_straight_to_the_slow_probe(clock: Clock) -> None:
    breaker = make_breaker(clock, initial_s=0.1, max_s=30.0)
    backoff_s = breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
    assert breaker.rejected_reason == "HTTP 401"
    assert 15.0 <= backoff_s <= 30.0
    # Later transient failures keep probing slowly while rejected.
    assert 15.0 <= breaker.connect_failed(OSError("down"), fatal=False) <= 30.0


def test_while_rejected_one_probe_at_a_time(clock: Clock) -> None:
    breaker = make_breaker(clock)
    assert breaker.connect_budget(4, connecting=0) == 4
    breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
    assert breaker.connect_budget(4, connecting=0) == 1
    assert breaker.connect_budget(3, connecting=1) == 0


def test_a_success_alone_does_not_lift_a_rejection(clock: Clock) -> None:
    breaker = make_breaker(clock, initial_s=0.1, max_s=30.0)
    breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
    breaker.connect_succeeded()
    assert breaker.rejected_reason == "HTTP 401"
    assert breaker.consecutive_failures == 1  # still counted until a connection proves itself
    assert not breaker.backing_off  # but the probe's connection may be followed by more connects


def test_only_a_connection_opened_since_the_rejection_lifts_it(clock: Clock) -> None:
    breaker = make_breaker(clock)
    opened_before = clock.now
    clock.now += 1.0
    breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
    breaker.connection_proved(opened_before)
    assert breaker.rejected_reason == "HTTP 401"
    assert not breaker.opened_since_rejection(opened_before)
    clock.now += 10.0
    opened_after = clock.now
    assert breaker.opened_since_rejection(opened_after)
    breaker.connection_proved(opened_after)
    assert rejection(breaker) == (None, 0)
    assert not breaker.opened_since_rejection(opened_after)  # nothing left to lift


def test_serving_needs_ready_once_and_flips_with_rejection_and_closing(clock: Clock) -> None:
    breaker = make_breaker(clock)
    update = breaker.update_serving
    assert update(ready=False, closing=False, open_count=0) is None
    assert update(ready=True, closing=False, open_count=2) == HealthChanged(
        True, "2 upstream connections open"
    )
    # Ready once is enough: losing connections later does not flip it.
    assert update(ready=False, closing=False, open_count=0) is None
    assert breaker.serving
    breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
    assert update(ready=False, closing=False, open_count=0) == HealthChanged(False, "HTTP 401")
    clock.now += 5.0
    breaker.connection_proved(clock.now)
    assert update(ready=True, closing=False, open_count=1) == HealthChanged(
        True, "1 upstream connections open"
    )
    assert update(ready=True, closing=True, open_count=1) == HealthChanged(False, "pool closing")
    assert not breaker.serving


def test_a_rejection_is_logged_once_not_per_probe(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make_breaker(clock)
    with caplog.at_level("WARNING", logger="voxgate.pool.breaker"):
        breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
        breaker.connect_failed(PermissionError("HTTP 401"), fatal=True)
    assert [r.getMessage() for r in caplog.records] == [
        "upstream rejects voxgate: HTTP 401; probing every 8s"
    ]


def test_inconsistent_backoff_bounds_are_refused(clock: Clock) -> None:
    with pytest.raises(ValueError, match="backoff_initial_s"):
        Breaker(backoff_initial_s=2.0, backoff_max_s=1.0, clock=clock)


def test_a_batch_of_concurrent_connect_failures_counts_once(clock: Clock) -> None:
    breaker = make_breaker(clock, initial_s=1.0, max_s=8.0)
    batch = [breaker.connect_started() for _ in range(4)]  # a refill starts four connects at once
    first = breaker.connect_failed(OSError("down"), fatal=False, started=batch[0])
    assert 0.5 <= first <= 1.0
    next_at = breaker.next_connect_at
    for token in batch[1:]:
        clock.now += 0.01
        # The rest of the batch failed for the same outage: one failure, the same next attempt,
        # and the delay reported is what is really left of it.
        assert breaker.connect_failed(OSError("down"), fatal=False, started=token) == pytest.approx(
            next_at - clock.now
        )
    assert breaker.consecutive_failures == 1 and breaker.next_connect_at == next_at
    clock.now = next_at
    second = breaker.connect_failed(OSError("down"), fatal=False, started=breaker.connect_started())
    assert breaker.consecutive_failures == 2 and 1.0 <= second <= 2.0  # the next round doubles


def test_a_late_failure_of_a_batch_never_reports_a_negative_delay(clock: Clock) -> None:
    breaker = make_breaker(clock)
    tokens = [breaker.connect_started(), breaker.connect_started()]
    backoff_s = breaker.connect_failed(OSError("down"), fatal=False, started=tokens[0])
    clock.now += backoff_s + 5.0  # the other connect hung until its timeout, past the backoff
    assert breaker.connect_failed(TimeoutError(), fatal=False, started=tokens[1]) == 0.0
    assert breaker.consecutive_failures == 1


def test_a_fatal_failure_within_a_batch_still_rejects(clock: Clock) -> None:
    breaker = make_breaker(clock, initial_s=0.1, max_s=30.0)
    tokens = [breaker.connect_started(), breaker.connect_started()]
    breaker.connect_failed(OSError("down"), fatal=False, started=tokens[0])
    backoff_s = breaker.connect_failed(PermissionError("HTTP 401"), fatal=True, started=tokens[1])
    assert breaker.rejected_reason == "HTTP 401" and 15.0 <= backoff_s <= 30.0
