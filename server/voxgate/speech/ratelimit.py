"""The task-start rate limit: a token bucket on run-task, per process.

DashScope limits how fast an account starts tasks (CosyVoice: about 3 run-task per second per
model family by default, raised on request); past it tasks fail ``Throttling``. Every run-task
of this process (first attempts and retries alike) takes a token first; prewarm and refills
only open sockets, which the pool's connect cap already ramps. A start that would wait past
the call's acquire timeout or deadline is refused at once with :class:`RateLimited` instead.

The bucket is per process: with ``--workers N`` and several replicas, give each process the
account's rate divided by the number of processes (docs/operations.md#overload-and-abuse).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from voxgate.rpc.admission import Overload


class RateLimited(Exception):
    """The next task start is further away than the call may wait."""

    def __init__(self, wait_s: float, max_wait_s: float, rate_per_s: float) -> None:
        super().__init__(
            f"task-start rate limit of {rate_per_s:g}/s (VOXGATE_TASK_START_RATE): the next start is"
            f" {wait_s:.2f}s away, longer than this call may wait ({max_wait_s:.2f}s)"
        )
        self.wait_s = wait_s


class TaskStartLimiter:
    """``await limiter.take(max_wait_s)`` before each run-task. A ``rate_per_s`` of 0 never waits."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        overload: Overload,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._overload = overload
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    async def take(self, max_wait_s: float | None) -> float:
        """Take a token, waiting for it up to ``max_wait_s`` (None: as long as needed); return the wait.

        Tokens are reserved in order of asking: a caller that must wait holds its place, so
        waiting callers start one every ``1 / rate`` seconds. Raises :class:`RateLimited`.
        """
        if self.rate_per_s <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        wait_s = -self._tokens / self.rate_per_s
        if max_wait_s is not None and wait_s > max_wait_s:
            self._tokens += 1
            raise RateLimited(wait_s, max_wait_s, self.rate_per_s)
        self._overload.count("rate_limited_waits")
        try:
            await asyncio.sleep(wait_s)
        except asyncio.CancelledError:
            self._tokens += 1  # the start will not happen: its place goes to the next caller
            raise
        return wait_s
