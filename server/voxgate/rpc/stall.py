"""The write-stall limit: a write to the caller that does not complete within the limit ends the call.

gRPC's flow control makes ``context.write()`` wait while the caller does not read: that is
backpressure, and inside the limit it stays. Past it, a caller that stopped reading would keep
what the call holds (a pooled upstream connection, an HTTP connection) for as long as it likes,
so :class:`WriteGuard` frees it and ends the call with :class:`WriteStalled` instead.

Like the speech connection's silence watchdog, one timer per call re-arms itself from the
latest write instead of an ``asyncio.timeout`` per write (a timer pushed and cancelled per
chunk costs ~7 us each: docs/benchmarks.md). A write costs two clock reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WriteStalled(Exception):
    """A write to the caller did not complete within the write-stall limit."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"the caller read nothing for {limit_s:.3g}s (write stalled)")
        self.limit_s = limit_s


class WriteGuard:
    """``with WriteGuard(limit_s) as guard: await guard.write(context.write(msg))`` in the handler task.

    When a write has waited ``limit_s``, :attr:`on_stall` runs at once (to free what the call
    holds) and the write raises :class:`WriteStalled` once it completes. The write itself is not
    cancelled: gRPC cannot send the call's status while a message is still pending, so the
    caller gets the status after the audio already queued, whenever it reads again (or the
    call ends when the caller goes away). ``limit_s`` of 0 turns the guard off; time spent
    outside :meth:`write` never counts.
    """

    def __init__(self, limit_s: float) -> None:
        self._limit_s = limit_s
        self._loop = asyncio.get_running_loop()
        self._writing_since: float | None = None
        self.expired = False
        self.on_stall: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if limit_s > 0:
            self._timer = self._loop.call_at(self._loop.time() + limit_s, self._check)

    def __enter__(self) -> WriteGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def write(self, write: Awaitable[T]) -> T:
        """Await ``write``; raise :class:`WriteStalled` after it if it outlasted the limit."""
        if self.expired:
            raise WriteStalled(self._limit_s)
        self._writing_since = self._loop.time()
        try:
            result = await write
        except Exception as exc:
            if self.expired:  # failed after the stall: say why the call ended, not how the write did
                raise WriteStalled(self._limit_s) from exc
            raise
        finally:
            self._writing_since = None
        if self.expired:
            raise WriteStalled(self._limit_s)
        return result

    def _check(self) -> None:
        now = self._loop.time()
        since = self._writing_since
        if since is not None and now - since >= self._limit_s:
            self.expired = True
            self._timer = None
            if self.on_stall is not None:
                self.on_stall()
            return
        self._timer = self._loop.call_at((since if since is not None else now) + self._limit_s, self._check)
