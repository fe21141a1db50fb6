"""Per-caller quotas: streams at once, synthesis characters and generation requests per minute.

The two rates are counted over a sliding window of the last 60 s, charged when a call is
admitted (the upstream bills a request that fails half-way too). A refusal names the quota
and says when the same call would pass (``retry_after_s``); ``None`` when it never will (one
request larger than the whole per-minute quota). The clock is injectable for tests.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from voxgate.rpc.callers import Caller

WINDOW_S = 60.0
STREAMS_RETRY_AFTER_S = 1.0
"""No one knows when a stream ends; a hint to try again soon."""


class QuotaExceeded(Exception):
    def __init__(self, quota: str, limit: int, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str | None:
        """Whole seconds, rounded up (like HTTP's Retry-After); None when retrying cannot help."""
        return None if self.retry_after_s is None else str(max(1, math.ceil(self.retry_after_s)))


class _Window:
    """Amounts charged in the last :data:`WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def used(self, now: float) -> int:
        while self._entries and self._entries[0][0] <= now - WINDOW_S:
            self._total -= self._entries.popleft()[1]
        return self._total

    def charge(self, now: float, amount: int) -> None:
        self._entries.append((now, amount))
        self._total += amount

    def wait_for(self, now: float, amount: int, limit: int) -> float:
        """Seconds until ``amount`` more fits under ``limit`` (entries expire oldest first)."""
        excess = self.used(now) + amount - limit
        for charged_at, charged in self._entries:
            excess -= charged
            if excess <= 0:
                return charged_at + WINDOW_S - now
        return WINDOW_S


@dataclass
class Usage:
    """One caller's use: now, in the last minute, and since start."""

    active_streams: int = 0
    requests: int = 0
    characters: int = 0
    generation_requests: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    characters_window: _Window = field(default_factory=_Window, repr=False)
    generation_window: _Window = field(default_factory=_Window, repr=False)


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    name: str
    active_streams: int
    requests: int
    characters: int
    generation_requests: int
    characters_last_minute: int
    generation_requests_last_minute: int
    refused: dict[str, int]


class Ledger:
    """Admits calls within their caller's quotas; call :meth:`release` when an admitted call ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._usage: dict[str, Usage] = {}

    def admit(self, caller: Caller, *, characters: int = 0, generation: bool = False) -> None:
        """Count one call of ``caller``, or raise :class:`QuotaExceeded` and count nothing but the refusal."""
        usage = self._usage.setdefault(caller.name, Usage())
        try:
            self._check(caller, usage, characters=characters, generation=generation)
        except QuotaExceeded as exc:
            usage.refused[exc.quota] = usage.refused.get(exc.quota, 0) + 1
            raise
        now = self._clock()
        usage.active_streams += 1
        usage.requests += 1
        if characters:
            usage.characters += characters
            usage.characters_window.charge(now, characters)
        if generation:
            usage.generation_requests += 1
            usage.generation_window.charge(now, 1)

    def release(self, caller: Caller) -> None:
        self._usage[caller.name].active_streams -= 1

    def _check(self, caller: Caller, usage: Usage, *, characters: int, generation: bool) -> None:
        quotas, now = caller.quotas, self._clock()
        limit = quotas.max_concurrent_streams
        if limit is not None and usage.active_streams >= limit:
            raise QuotaExceeded(
                "max_concurrent_streams",
                limit,
                f"caller {caller.name!r} has {usage.active_streams} calls running, its max_concurrent_streams"
                f" quota is {limit}",
                STREAMS_RETRY_AFTER_S,
            )
        limit = quotas.characters_per_minute
        if limit is not None and characters:
            if characters > limit:
                raise QuotaExceeded(
                    "characters_per_minute",
                    limit,
                    f"the request bills {characters} characters, more than caller {caller.name!r}'s whole"
                    f" characters_per_minute quota of {limit}: split the text",
                    None,
                )
            used = usage.characters_window.used(now)
            if used + characters > limit:
                raise QuotaExceeded(
                    "characters_per_minute",
                    limit,
                    f"caller {caller.name!r} used {used} of its characters_per_minute quota of {limit};"
                    f" this request bills {characters}",
                    usage.characters_window.wait_for(now, characters, limit),
                )
        limit = quotas.generation_requests_per_minute
        if limit is not None and generation:
            used = usage.generation_window.used(now)
            if used + 1 > limit:
                raise QuotaExceeded(
                    "generation_requests_per_minute",
                    limit,
                    f"caller {caller.name!r} made {used} generation requests in the last minute, its"
                    f" generation_requests_per_minute quota is {limit}",
                    usage.generation_window.wait_for(now, 1, limit),
                )

    def snapshot(self) -> list[UsageSnapshot]:
        now = self._clock()
        return [
            UsageSnapshot(
                name=name,
                active_streams=usage.active_streams,
                requests=usage.requests,
                characters=usage.characters,
                generation_requests=usage.generation_requests,
                characters_last_minute=usage.characters_window.used(now),
                generation_requests_last_minute=usage.generation_window.used(now),
                refused=dict(usage.refused),
            )
            for name, usage in sorted(self._usage.items())
        ]
