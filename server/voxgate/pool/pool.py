"""A warm pool of connections, generic over the connection type.

The pool knows nothing of DashScope: it is built from three callbacks (open a
connection, close one, tell whether one is still open) and lends connections
through :meth:`Pool.lease`. Every decision (lend, queue, open, evict) is plain
synchronous bookkeeping; network I/O (connect, close) runs in tasks outside it,
so no lock is needed on the single event loop.

Return discipline: a lease goes back to the pool only if the borrower called
:meth:`Lease.mark_reusable` (for the synthesizer: after ``task-finished``).
Anything else — an exception, a cancel, forgetting — closes the connection and
the pool opens a replacement. A dirty connection is never lent again.

Health: a housekeeper (:meth:`Pool.housekeep`, run every ``housekeeping_interval_s``)
pings idle connections (a missing pong within ``ping_timeout_s`` evicts), retires
idle and aged ones before the upstream would cut them, refills, and reports leases
held suspiciously long. A connect the ``is_fatal`` callback calls permanent (bad
credentials), or a fresh connection the upstream closes right after its handshake
(quota), makes the pool *rejected*: :attr:`Pool.serving` turns False with the reason,
and the pool probes only once per ``backoff_max_s`` until a connection proves itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from voxgate.pool.config import OVERFLOW_OPEN, PoolConfig
from voxgate.pool.errors import ClosedAfterOpen, ConnectFailed, PoolClosed, PoolTimeout
from voxgate.pool.events import (
    EVICT_CLOSED,
    EVICT_DISCARDED,
    EVICT_IDLE,
    EVICT_LIFETIME,
    EVICT_OVERFLOW,
    EVICT_PING,
    EVICT_REJECTED,
    EVICT_SHUTDOWN,
    ConnectionEvicted,
    ConnectionFailed,
    ConnectionOpened,
    HealthChanged,
    LeaseGranted,
    LeaseHeldLong,
    LeaseRefused,
    PoolEvent,
    PoolListener,
    PoolStats,
)
from voxgate.pool.slot import Lease, Slot

log = logging.getLogger(__name__)

C = TypeVar("C")


class Pool(Generic[C]):
    """Lends warm connections FIFO, opens them ahead of demand, and drops dirty ones.

    Call :meth:`start` once, then :meth:`lease` per request, and :meth:`close` at the end.
    Optional callbacks: ``ping`` (resolves when the peer answered; the pool applies
    ``ping_timeout_s``), ``is_fatal`` (a connect error that retrying cannot fix) and
    ``refusal`` (if the way a connection closed means the upstream refuses us, why; else None).
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None]],
        is_open: Callable[[C], bool],
        config: PoolConfig,
        ping: Callable[[C], Awaitable[None]] | None = None,
        is_fatal: Callable[[BaseException], bool] = lambda _exc: False,
        refusal: Callable[[C], str | None] = lambda _conn: None,
        listeners: Sequence[PoolListener] = (),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._connect = connect
        self._close = close
        self._is_open = is_open
        self._ping = ping
        self._is_fatal = is_fatal
        self._refusal = refusal
        self.config = config
        self._listeners = tuple(listeners)
        self._clock = clock
        self._rng = rng or random.Random()

        self._idle: deque[Slot[C]] = deque()
        self._in_use: set[Slot[C]] = set()
        self._checking: set[Slot[C]] = set()
        self._overflow_in_use: set[Slot[C]] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[Slot[C]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel_on_close: set[asyncio.Task[None]] = set()
        self._housekeeper: asyncio.Task[None] | None = None
        self._retry_timer: asyncio.TimerHandle | None = None
        self._next_connect_at = 0.0
        self._consecutive_failures = 0
        self._last_connect_error: BaseException | None = None
        self._rejected: str | None = None
        self._rejected_at = 0.0
        self._was_ready = False
        self._serving = False
        self._started = False
        self._closing = False
        self._changed = asyncio.Event()

        self._created = 0
        self._connect_failures = 0
        self._leases = 0
        self._warm_leases = 0
        self._reused_leases = 0
        self._queued_leases = 0
        self._overflow_leases = 0
        self._timeouts = 0
        self._evicted: dict[str, int] = {}

    # -- public surface ------------------------------------------------------------------

    def start(self) -> None:
        """Begin prewarming and housekeeping in the background; returns at once. See :meth:`wait_ready`."""
        if self._started:
            raise RuntimeError("pool already started")
        self._started = True
        self._refill()
        self._housekeeper = asyncio.get_running_loop().create_task(self._housekeep_forever())

    async def wait_ready(self) -> None:
        """Return once ``ready_min`` connections are open (idle or lent)."""
        while not self.ready:
            if self._closing:
                raise PoolClosed("pool closed before it was ready")
            await self._wait_change()

    @property
    def ready(self) -> bool:
        return self._open_count() >= self.config.effective_ready_min

    @property
    def in_use(self) -> int:
        """Pooled connections lent right now (overflow connections not counted); cheaper than stats()."""
        return len(self._in_use)

    @property
    def serving(self) -> bool:
        """Ready once, not rejected by the upstream, not closing: what a readiness probe wants."""
        return self._serving

    @property
    def rejected_reason(self) -> str | None:
        """Why the upstream is refusing us (fatal connect error, close right after open), else None."""
        return self._rejected

    @property
    def last_connect_error(self) -> BaseException | None:
        """The error of the latest failed connect, cleared by the next success."""
        return self._last_connect_error

    @contextlib.asynccontextmanager
    async def lease(self, timeout_s: float | None = None) -> AsyncIterator[Lease[C]]:
        """Borrow a connection for the ``async with`` block.

        On exit the connection goes back only if :meth:`Lease.mark_reusable` was
        called; otherwise it is closed and replaced.
        """
        lease = await self.acquire(timeout_s)
        try:
            yield lease
        finally:
            self._release(lease)

    async def acquire(self, timeout_s: float | None = None) -> Lease[C]:
        """Take a healthy connection, waiting FIFO up to ``timeout_s`` (default: config).

        Raises :class:`PoolTimeout`, :class:`PoolClosed` or :class:`ConnectFailed`.
        Pair every successful call with :meth:`release` (or use :meth:`lease`).
        """
        if not self._started:
            raise RuntimeError("pool not started")
        if self._closing:
            raise PoolClosed("pool is closing")
        started = self._clock()
        timeout_s = self.config.acquire_timeout_s if timeout_s is None else timeout_s
        opened_before = self._created
        slot = self._take_idle()
        queued = slot is None
        if slot is None:
            self._fail_fast_if_unreachable(started)
            if self.config.overflow == OVERFLOW_OPEN and self._at_capacity():
                slot = await self._open_overflow(started, timeout_s)
            else:
                slot = await self._wait_for_slot(started, timeout_s)
        now = self._clock()
        overflow = slot.serial == 0
        reused = slot.uses > 0
        warm = not overflow and slot.serial <= opened_before
        slot.leased_at = now
        slot.held_long_reported = False
        self._leases += 1
        self._warm_leases += warm
        self._reused_leases += reused
        self._queued_leases += queued
        self._overflow_leases += overflow
        lease = Lease(slot.conn, reused, now - started, now - slot.created_at, slot)
        self._emit(LeaseGranted(lease.wait_s, reused, warm, lease.age_s, queued, overflow))
        return lease

    def release(self, lease: Lease[C]) -> None:
        """Give back a lease from :meth:`acquire`; reuse depends on :meth:`Lease.mark_reusable`."""
        self._release(lease)

    def stats(self) -> PoolStats:
        return PoolStats(
            idle=len(self._idle),
            in_use=len(self._in_use),
            connecting=self._connecting,
            checking=len(self._checking),
            pending=len(self._waiters),
            overflow_in_use=len(self._overflow_in_use),
            max_size=self.config.max_size,
            created=self._created,
            connect_failures=self._connect_failures,
            leases=self._leases,
            warm_leases=self._warm_leases,
            reused_leases=self._reused_leases,
            queued_leases=self._queued_leases,
            timeouts=self._timeouts,
            overflow_leases=self._overflow_leases,
            evicted=dict(self._evicted),
            ready=self.ready,
            serving=self._serving,
            closing=self._closing,
        )

    def __repr__(self) -> str:
        extra = f" overflow={len(self._overflow_in_use)}" if self._overflow_in_use else ""
        extra += f" checking={len(self._checking)}" if self._checking else ""
        extra += " rejected" if self._rejected else ""
        extra += " closing" if self._closing else ""
        return (
            f"<Pool idle={len(self._idle)} in_use={len(self._in_use)} connecting={self._connecting}"
            f" pending={len(self._waiters)} max={self.config.max_size}{extra}>"
        )

    def housekeep(self) -> None:
        """One housekeeping pass now (the background task runs one per ``housekeeping_interval_s``).

        Evicts idle connections that are closed, and retires up to ``max_concurrent_connects``
        idle too long or too old (the rest at the next passes, or at borrow); starts a
        ping on each idle connection not heard from for ``ping_interval_s``; reports
        leases held past ``leak_warning_s``; refills; clears a rejection once a
        connection has stayed open ``early_close_s``.
        """
        if self._closing or not self._started:
            return
        now = self._clock()
        # Retiring for age is not urgent: at most one connect-cap's worth per pass, so connections
        # prewarmed together are replaced in a trickle and the pool never empties for maintenance.
        retirements_left = self.config.max_concurrent_connects
        for slot in list(self._idle):
            reason = self._unusable_reason(slot)
            if reason in (EVICT_IDLE, EVICT_LIFETIME):
                if retirements_left == 0:
                    continue
                retirements_left -= 1
            if reason is not None:
                self._idle.remove(slot)
                self._evict_unusable(slot, reason)
            elif self._ping_due(slot, now):
                self._idle.remove(slot)
                self._checking.add(slot)
                check = asyncio.get_running_loop().create_task(self._check(slot))
                self._cancel_on_close.add(check)  # a ping, like a connect, is cancelled by close()
                check.add_done_callback(self._cancel_on_close.discard)
        self._report_held_long(now)
        self._clear_rejection_if_proven(now)
        self._refill()
        self._signal()

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop lending, wait up to ``grace_s`` for leases to come back, then close all.

        Waiters get :class:`PoolClosed`; connects and pings in flight are cancelled.
        """
        if self._closing:
            await self._drain_tasks()
            return
        self._closing = True
        self._signal()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("pool is closing"))
        for task in list(self._cancel_on_close):
            task.cancel()
        while self._idle:
            self._evict(self._idle.popleft(), EVICT_SHUTDOWN)
        if (self._in_use or self._overflow_in_use) and grace_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    while self._in_use or self._overflow_in_use:
                        await self._wait_change()
        for slots in (self._in_use, self._overflow_in_use):
            for slot in list(slots):
                # Force-closing makes the borrower fail; its release then finds the slot gone.
                slots.discard(slot)
                self._evict(slot, EVICT_SHUTDOWN)
        await self._drain_tasks()

    # -- lending ---------------------------------------------------------------------------

    def _open_count(self) -> int:
        return len(self._idle) + len(self._in_use) + len(self._checking)

    def _at_capacity(self) -> bool:
        return self._open_count() + self._connecting >= self.config.max_size

    def _take_idle(self) -> Slot[C] | None:
        """Pop the oldest idle connection that passes the borrow check; evict failures."""
        while self._idle:
            slot = self._idle.popleft()
            reason = self._unusable_reason(slot)
            if reason is None:
                self._in_use.add(slot)
                return slot
            self._evict_unusable(slot, reason)
        self._refill()
        return None

    def _unusable_reason(self, slot: Slot[C]) -> str | None:
        now = self._clock()
        if not self._is_open(slot.conn):
            return EVICT_CLOSED
        if now >= slot.expires_at:
            return EVICT_LIFETIME
        if now - slot.idle_since >= self.config.max_idle_s:
            return EVICT_IDLE
        return None

    def _fail_fast_if_unreachable(self, started: float) -> None:
        # With nothing open, nothing opening and the last connect failed, waiting would
        # only turn "upstream unreachable" into a misleading acquire timeout.
        backing_off = self._clock() < self._next_connect_at
        nothing_open = not self._in_use and not self._checking and not self._connecting
        if backing_off and nothing_open and self._last_connect_error:
            self._emit(LeaseRefused("unreachable", self._clock() - started))
            raise ConnectFailed(
                f"upstream unreachable: {self._last_connect_error}"
            ) from self._last_connect_error

    async def _open_overflow(self, started: float, timeout_s: float) -> Slot[C]:
        """Open a temporary connection for one lease (overflow policy); it is closed on release."""
        try:
            async with asyncio.timeout(min(timeout_s, self.config.connect_timeout_s)):
                conn = await self._connect()
        except Exception as exc:
            self._emit(LeaseRefused("overflow_connect_failed", self._clock() - started))
            if isinstance(exc, TimeoutError):
                raise ConnectFailed("overflow connect timed out") from exc
            raise ConnectFailed(f"overflow connect failed: {exc}") from exc
        now = self._clock()
        slot = Slot(conn, created_at=now, expires_at=math.inf, idle_since=now, serial=0)
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            raise PoolClosed("pool is closing")
        self._overflow_in_use.add(slot)
        return slot

    async def _wait_for_slot(self, started: float, timeout_s: float) -> Slot[C]:
        waiter: asyncio.Future[Slot[C]] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._refill()
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # We were handed a connection in the same tick we gave up: pass it on.
                slot = waiter.result()
                self._in_use.discard(slot)
                self._return_clean(slot)
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                self._timeouts += 1
                self._emit(LeaseRefused("timeout", self._clock() - started))
                if self._last_connect_error is not None and not self._in_use:
                    raise ConnectFailed(
                        f"no upstream connection within {timeout_s:.3g}s: {self._last_connect_error}"
                    ) from self._last_connect_error
                raise PoolTimeout(f"no upstream connection free within {timeout_s:.3g}s ({self!r})") from None
            raise

    def _release(self, lease: Lease[C]) -> None:
        slot = lease._slot
        if slot in self._overflow_in_use:
            self._overflow_in_use.discard(slot)
            self._evict(slot, EVICT_OVERFLOW)
            return
        if slot not in self._in_use:
            return  # released twice, or force-closed by shutdown
        self._in_use.discard(slot)
        if not lease.reusable:
            self._evict(slot, EVICT_DISCARDED)
            self._refill()
            return
        slot.uses += 1
        self._clear_rejection(slot)
        self._return_clean(slot)

    def _return_clean(self, slot: Slot[C]) -> None:
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            return
        reason = self._unusable_reason(slot)
        if reason is not None:
            self._evict(slot, reason)
            self._refill()
            return
        slot.idle_since = slot.checked_at = self._clock()
        self._hand_over(slot)

    def _hand_over(self, slot: Slot[C]) -> None:
        """Give ``slot`` to the oldest live waiter, or park it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use.add(slot)
                waiter.set_result(slot)
                self._signal()
                return
        self._idle.append(slot)
        self._signal()

    # -- health --------------------------------------------------------------------------------

    async def _housekeep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.config.housekeeping_interval_s)
            try:
                self.housekeep()
            except Exception:  # a bug here must not end housekeeping for good
                log.exception("pool housekeeping failed")

    def _ping_due(self, slot: Slot[C], now: float) -> bool:
        interval = self.config.ping_interval_s
        return self._ping is not None and interval is not None and now - slot.checked_at >= interval

    async def _check(self, slot: Slot[C]) -> None:
        """Ping an idle connection taken out of the idle queue; put it back or evict it."""
        assert self._ping is not None
        try:
            async with asyncio.timeout(self.config.ping_timeout_s):
                await self._ping(slot.conn)
        except asyncio.CancelledError:  # close() does not wait out a ping
            self._checking.discard(slot)
            self._evict(slot, EVICT_SHUTDOWN)
            raise
        except Exception:
            alive = False
        else:
            alive = True
        self._checking.discard(slot)
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            return
        if not alive:
            self._evict(slot, EVICT_PING)
            self._refill()
            return
        slot.checked_at = self._clock()
        reason = self._unusable_reason(slot)
        if reason is not None:
            self._evict_unusable(slot, reason)
            self._refill()
            return
        self._hand_over(slot)

    def _report_held_long(self, now: float) -> None:
        limit = self.config.leak_warning_s
        if limit is None:
            return
        for slot in (*self._in_use, *self._overflow_in_use):
            held_s = now - slot.leased_at
            if held_s >= limit and not slot.held_long_reported:
                slot.held_long_reported = True
                self._emit(LeaseHeldLong(held_s, now - slot.created_at))

    def _evict_unusable(self, slot: Slot[C], reason: str) -> None:
        """Evict ``slot``; a fresh, unused connection the peer refused at once is a rejection."""
        age_s = self._clock() - slot.created_at
        refusal = self._refusal(slot.conn) if reason == EVICT_CLOSED and slot.uses == 0 else None
        if refusal is not None and age_s < self.config.early_close_s:
            self._evict(slot, EVICT_REJECTED)
            error = ClosedAfterOpen(
                f"upstream closed a new connection {age_s:.2g}s after its handshake,"
                f" before any use: {refusal}"
            )
            self._on_connect_failed(error, fatal=True)
            return
        self._evict(slot, reason)

    def _reject(self, reason: str) -> None:
        if self._rejected is None:
            log.warning(
                "upstream rejects voxgate: %s; probing every %.3gs", reason, self.config.backoff_max_s
            )
        self._rejected = reason
        self._rejected_at = self._clock()

    def _clear_rejection(self, slot: Slot[C]) -> None:
        if self._rejected is not None and slot.created_at >= self._rejected_at:
            self._rejected = None
            self._consecutive_failures = 0

    def _clear_rejection_if_proven(self, now: float) -> None:
        if self._rejected is None:
            return
        for slot in self._idle:
            opened_since = slot.created_at >= self._rejected_at
            if (
                opened_since
                and now - slot.created_at >= self.config.early_close_s
                and self._is_open(slot.conn)
            ):
                self._clear_rejection(slot)
                return

    def _update_serving(self) -> None:
        self._was_ready = self._was_ready or self.ready
        serving = self._was_ready and self._rejected is None and not self._closing
        if serving == self._serving:
            return
        self._serving = serving
        if serving:
            reason = f"{self._open_count()} upstream connections open"
        elif self._closing:
            reason = "pool closing"
        else:
            reason = self._rejected or "not ready"
        self._emit(HealthChanged(serving, reason))

    # -- opening and closing -------------------------------------------------------------------

    def _refill(self) -> None:
        """Start as many connects as demand, capacity and the concurrency cap allow."""
        if self._closing or not self._started:
            return
        now = self._clock()
        if now < self._next_connect_at:
            self._schedule_retry(self._next_connect_at - now)
            return
        live_waiters = sum(1 for waiter in self._waiters if not waiter.done())
        wanted = self.config.effective_min_idle + live_waiters - len(self._idle) - self._connecting
        capacity = self.config.max_size - self._open_count() - self._connecting
        # The cap holds whatever asked for the refill (prewarm, eviction, restart): a ramp, not a herd.
        slots_to_connect = self.config.max_concurrent_connects - self._connecting
        if self._rejected is not None:
            slots_to_connect = min(slots_to_connect, 1 - self._connecting)  # one probe at a time
        for _ in range(max(0, min(wanted, capacity, slots_to_connect))):
            self._connecting += 1
            task = asyncio.get_running_loop().create_task(self._open_one())
            self._cancel_on_close.add(task)
            task.add_done_callback(self._cancel_on_close.discard)

    def _schedule_retry(self, delay_s: float) -> None:
        if self._retry_timer is None:

            def fire() -> None:
                self._retry_timer = None
                self._refill()

            self._retry_timer = asyncio.get_running_loop().call_later(delay_s, fire)

    async def _open_one(self) -> None:
        started = self._clock()
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                conn = await self._connect()
        except asyncio.CancelledError:
            self._connecting -= 1
            raise
        except Exception as exc:
            self._connecting -= 1
            self._on_connect_failed(exc, fatal=self._is_fatal(exc))
            return
        self._connecting -= 1
        now = self._clock()
        self._created += 1
        if self._rejected is None:
            self._consecutive_failures = 0
        self._last_connect_error = None
        self._next_connect_at = 0.0
        self._emit(ConnectionOpened(now - started))
        lifetime = self.config.max_lifetime_s * (1 - self._rng.uniform(0, self.config.lifetime_jitter))
        slot = Slot(
            conn,
            created_at=now,
            expires_at=now + lifetime,
            idle_since=now,
            serial=self._created,
            checked_at=now,
        )
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            return
        self._hand_over(slot)
        self._refill()

    def _on_connect_failed(self, exc: Exception, *, fatal: bool = False) -> None:
        if isinstance(exc, TimeoutError):
            exc = TimeoutError(f"connect timed out after {self.config.connect_timeout_s:.3g}s")
        self._connect_failures += 1
        self._consecutive_failures += 1
        self._last_connect_error = exc
        if fatal:
            self._reject(str(exc))
        # Exponential backoff with "equal jitter": never zero, never synchronised. A rejection
        # that retrying cannot fix (credentials, quota) goes straight to the slow probe.
        ceiling = min(
            self.config.backoff_max_s,
            self.config.backoff_initial_s * 2 ** (self._consecutive_failures - 1),
        )
        if self._rejected is not None:
            ceiling = self.config.backoff_max_s
        backoff_s = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        self._next_connect_at = self._clock() + backoff_s
        self._emit(ConnectionFailed(exc, backoff_s))
        log.warning("upstream connect failed (%s); next attempt in %.2fs", exc, backoff_s)
        # The oldest waiter learns at once that the upstream is unreachable; the
        # caller above may retry within its own deadline.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                failure = ConnectFailed(f"upstream connect failed: {exc}")
                failure.__cause__ = exc
                waiter.set_exception(failure)
                break
        self._signal()
        self._refill()

    def _evict(self, slot: Slot[C], reason: str) -> None:
        self._evicted[reason] = self._evicted.get(reason, 0) + 1
        self._emit(ConnectionEvicted(reason, self._clock() - slot.created_at))
        self._spawn(self._close_quietly(slot.conn))
        self._signal()

    async def _close_quietly(self, conn: C) -> None:
        try:
            await self._close(conn)
        except Exception:
            log.debug("error closing a pooled connection", exc_info=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_tasks(self) -> None:
        tasks = {task for task in (self._housekeeper,) if task is not None}
        while self._tasks or self._cancel_on_close or tasks:
            await asyncio.gather(*self._tasks, *self._cancel_on_close, *tasks, return_exceptions=True)
            tasks = set()

    # -- notification ------------------------------------------------------------------------

    def _emit(self, event: PoolEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("pool listener failed on %r", event)

    def _signal(self) -> None:
        self._update_serving()
        self._changed.set()

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()
