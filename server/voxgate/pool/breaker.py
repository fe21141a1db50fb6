"""The pool's circuit breaker: connect backoff, rejection by the upstream, and the serving state.

Three facts decide whether the pool should open connections and whether it serves:

* consecutive connect failures set a backoff (exponential, "equal jitter": never zero,
  never synchronised across processes) before the next connect may start; the connects
  of one batch (in flight together when the first of them failed) count as one failure;
* a failure that retrying cannot fix (bad credentials, a fresh connection closed at once
  for quota) makes the breaker *rejected*: it probes only once per ``backoff_max_s``,
  one connect at a time, until a connection opened since proves itself;
* the pool is *serving* once it was ready, while not rejected and not closing.

No I/O and no timers here: the pool asks, at its own decision points, on the one clock
both share.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from voxgate.pool.events import HealthChanged

log = logging.getLogger(__name__)


class Breaker:
    """Backoff, rejection and serving state of one pool. Times are read from ``clock``."""

    def __init__(
        self,
        *,
        backoff_initial_s: float,
        backoff_max_s: float,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff_initial_s must be > 0 and <= backoff_max_s")
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._next_connect_at = 0.0
        self._consecutive_failures = 0
        self._generation = 0
        """Counted failures so far: a connect carries the generation it started in."""
        self._last_error: Exception | None = None
        self._rejected: str | None = None
        self._rejected_at = 0.0
        self._was_ready = False
        self._serving = False

    # -- reading -----------------------------------------------------------------------------

    @property
    def next_connect_at(self) -> float:
        """When the next connect may start (on the breaker's clock); 0 when it may start now."""
        return self._next_connect_at

    @property
    def backing_off(self) -> bool:
        return self._clock() < self._next_connect_at

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def last_error(self) -> Exception | None:
        """The error of the latest failed connect, cleared by the next success."""
        return self._last_error

    @property
    def rejected_reason(self) -> str | None:
        """Why the upstream is refusing us, else None."""
        return self._rejected

    @property
    def serving(self) -> bool:
        return self._serving

    def connect_budget(self, free: int, connecting: int) -> int:
        """How many of ``free`` connect slots may be used now: while rejected, one probe at a time."""
        if self._rejected is not None:
            return min(free, 1 - connecting)
        return free

    def opened_since_rejection(self, created_at: float) -> bool:
        """Whether a connection created at ``created_at`` may prove the rejection wrong."""
        return self._rejected is not None and created_at >= self._rejected_at

    # -- events --------------------------------------------------------------------------------

    def connect_started(self) -> int:
        """A connect starts: the token to hand back to :meth:`connect_failed` if it fails."""
        return self._generation

    def connect_succeeded(self) -> None:
        """A connect succeeded: connect again at once. While rejected, the failure count stays
        (a connection must first prove itself, see :meth:`connection_proved`)."""
        if self._rejected is None:
            self._consecutive_failures = 0
        self._last_error = None
        self._next_connect_at = 0.0

    def connect_failed(self, error: Exception, *, fatal: bool, started: int | None = None) -> float:
        """A connect failed (``fatal``: a rejection); returns the real delay before the next one.

        ``started`` is :meth:`connect_started`'s token: a connect already in flight when an
        earlier failure was counted is of the same batch (the same outage seen by every
        connect of one refill), so it records its error but neither raises the failure count
        nor moves the next-attempt time. Without a token, every failure counts.
        """
        now = self._clock()
        self._last_error = error
        newly_rejected = fatal and self._rejected is None
        if fatal:
            self._reject(str(error))
        if started is not None and started != self._generation and not newly_rejected:
            return max(0.0, self._next_connect_at - now)
        self._consecutive_failures += 1
        self._generation += 1
        # A rejection that retrying cannot fix (credentials, quota) goes straight to the slow probe.
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2.0 ** (self._consecutive_failures - 1))
        if self._rejected is not None:
            ceiling = self._backoff_max_s
        backoff_s = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        self._next_connect_at = now + backoff_s
        return backoff_s

    def connection_proved(self, created_at: float) -> None:
        """A connection opened at ``created_at`` ran a task, or stayed open long enough:
        if it was opened since the rejection, the rejection is over."""
        if self.opened_since_rejection(created_at):
            self._rejected = None
            self._consecutive_failures = 0

    def update_serving(self, *, ready: bool, closing: bool, open_count: int) -> HealthChanged | None:
        """Recompute :attr:`serving`; returns the event to emit if it flipped."""
        self._was_ready = self._was_ready or ready
        serving = self._was_ready and self._rejected is None and not closing
        if serving == self._serving:
            return None
        self._serving = serving
        if serving:
            reason = f"{open_count} upstream connections open"
        elif closing:
            reason = "pool closing"
        else:
            reason = self._rejected or "not ready"
        return HealthChanged(serving, reason)

    def _reject(self, reason: str) -> None:
        if self._rejected is None:
            log.warning("upstream rejects voxgate: %s; probing every %.3gs", reason, self._backoff_max_s)
        self._rejected = reason
        self._rejected_at = self._clock()
