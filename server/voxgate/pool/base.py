"""The pool's base: its state, and the opening and closing of connections.

:class:`PoolBase` holds what every part of the pool shares (the connector, the one
clock, the :class:`~voxgate.pool.breaker.Breaker`, the :class:`~voxgate.pool.slot.Slots`
and the waiters) and does the opening side: refill up to demand within the connect cap
and the breaker's budget, open in background tasks, hand a new connection to the oldest
waiter, close evicted ones. :class:`voxgate.pool.Pool` adds lending and housekeeping.

One clock: every time the pool reads comes from ``clock``, by default the running
event loop's (:func:`loop_clock`), the clock its timers (timeouts, the retry timer)
fire on; the breaker reads the same one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from voxgate.pool.breaker import Breaker
from voxgate.pool.config import PoolConfig
from voxgate.pool.connector import Connector
from voxgate.pool.errors import ClosedAfterOpen, NotConnected, PoolClosed
from voxgate.pool.events import (
    EVICT_CLOSED,
    EVICT_IDLE,
    EVICT_LIFETIME,
    EVICT_REJECTED,
    EVICT_SHUTDOWN,
    ConnectionEvicted,
    ConnectionFailed,
    ConnectionOpened,
    LeaseRefused,
    PoolEvent,
    PoolListener,
)
from voxgate.pool.slot import Slot, Slots, SlotState

log = logging.getLogger(__name__)

C = TypeVar("C")


def loop_clock() -> float:
    """The running event loop's monotonic clock: the one its timers fire on."""
    return asyncio.get_running_loop().time()


class PoolBase(Generic[C]):
    """State shared by the pool's parts, and the opening and closing of connections."""

    def __init__(
        self,
        connector: Connector[C],
        *,
        config: PoolConfig,
        listeners: Sequence[PoolListener] = (),
        clock: Callable[[], float] = loop_clock,
        rng: random.Random | None = None,
    ) -> None:
        self._connector = connector
        self.config = config
        self._listeners = tuple(listeners)
        self._clock = clock
        self._rng = rng or random.Random()
        self._breaker = Breaker(
            backoff_initial_s=config.backoff_initial_s,
            backoff_max_s=config.backoff_max_s,
            clock=clock,
            rng=self._rng,
        )
        self._slots: Slots[C] = Slots()
        self._waiters: deque[asyncio.Future[Slot[C]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel_on_close: set[asyncio.Task[None]] = set()
        self._housekeeper: asyncio.Task[None] | None = None
        self._retry_timer: asyncio.TimerHandle | None = None
        self._started = False
        self._closing = False
        self._caller_connecting = False
        """A caller drives a connect of its own (:meth:`Pool._connect_for_caller`): one at a time."""
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
        self._connect_times_s: deque[float] = deque(maxlen=8)
        """The latest successful connects' durations: what this path has shown."""

    @property
    def ready(self) -> bool:
        return self._open_count() >= self.config.effective_ready_min

    def _open_count(self) -> int:
        count = self._slots.count
        return count(SlotState.IDLE) + count(SlotState.LEASED) + count(SlotState.PINGING)

    def _sized_count(self) -> int:
        """Open connections that count against ``max_size``: one out for a ping does not, so a
        round of pings never stops a replacement connect (docs/operations.md#detection-and-recovery)."""
        return self._slots.count(SlotState.IDLE) + self._slots.count(SlotState.LEASED)

    def _connect_patience_s(self) -> float:
        """How long a connect driven by a caller may take: 4 x the slowest recent connect, at
        least ``check_timeout_s``, at most ``connect_timeout_s`` (all of it before any succeeded)."""
        if not self._connect_times_s:
            return self.config.connect_timeout_s
        shown_s = 4 * max(self._connect_times_s)
        return min(self.config.connect_timeout_s, max(self.config.check_timeout_s, shown_s))

    def _unusable_reason(self, slot: Slot[C]) -> str | None:
        now = self._clock()
        if not self._connector.is_open(slot.conn):
            return EVICT_CLOSED
        if now >= slot.expires_at:
            return EVICT_LIFETIME
        if now - slot.idle_since >= self.config.max_idle_s:
            return EVICT_IDLE
        return None

    def _hand_over(self, slot: Slot[C]) -> None:
        """Give ``slot`` to the oldest live waiter, or park it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._slots.move(slot, SlotState.LEASED)
                waiter.set_result(slot)
                self._signal()
                return
        self._slots.move(slot, SlotState.IDLE)
        self._signal()

    def _evict_unusable(self, slot: Slot[C], reason: str) -> None:
        """Evict ``slot``; a fresh, unused connection the peer refused at once is a rejection."""
        age_s = self._clock() - slot.created_at
        refusal = self._connector.refusal(slot.conn) if reason == EVICT_CLOSED and slot.uses == 0 else None
        if refusal is not None and age_s < self.config.early_close_s:
            self._evict(slot, EVICT_REJECTED)
            error = ClosedAfterOpen(
                f"upstream closed a new connection {age_s:.2g}s after its handshake,"
                f" before any use: {refusal}"
            )
            self._on_connect_failed(error, fatal=True)
            return
        self._evict(slot, reason)

    # -- opening and closing -------------------------------------------------------------------

    def _refill(self) -> None:
        """Start as many connects as demand, capacity and the concurrency cap allow."""
        if self._closing or not self._started:
            return
        now = self._clock()
        next_connect_at = self._breaker.next_connect_at
        if now < next_connect_at:
            self._schedule_retry(next_connect_at - now)
            return
        connecting = self._slots.count(SlotState.CONNECTING)
        live_waiters = sum(1 for waiter in self._waiters if not waiter.done())
        # A connection out for a ping is expected back (it is supply), but it does not take a place
        # a waiter's connect needs (it is not capacity).
        supply = self._slots.count(SlotState.IDLE) + self._slots.count(SlotState.PINGING) + connecting
        wanted = self.config.effective_min_idle + live_waiters - supply
        capacity = self.config.max_size - self._sized_count() - connecting
        # The cap holds whatever asked for the refill (prewarm, eviction, restart): a ramp, not a herd.
        # While the upstream rejects us the breaker allows one probe at a time.
        budget = self._breaker.connect_budget(self.config.max_concurrent_connects - connecting, connecting)
        for _ in range(max(0, min(wanted, capacity, budget))):
            slot = self._slots.add(Slot())
            task = asyncio.get_running_loop().create_task(self._open_one(slot))
            self._cancel_on_close.add(task)
            task.add_done_callback(self._cancel_on_close.discard)

    def _schedule_retry(self, delay_s: float) -> None:
        if self._retry_timer is None:

            def fire() -> None:
                self._retry_timer = None
                self._refill()

            self._retry_timer = asyncio.get_running_loop().call_later(delay_s, fire)

    async def _open_one(self, slot: Slot[C]) -> None:
        started = self._clock()
        batch = self._breaker.connect_started()
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                conn = await self._connector.connect()
        except asyncio.CancelledError:
            self._slots.move(slot, SlotState.CLOSED)
            raise
        except Exception as exc:
            self._slots.move(slot, SlotState.CLOSED)
            self._on_connect_failed(exc, fatal=self._connector.is_fatal(exc), batch=batch)
            return
        self._connected(slot, conn, started)
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            return
        self._hand_over(slot)
        self._refill()

    def _connected(self, slot: Slot[C], conn: C, started: float) -> None:
        """Book a successful connect of ``slot`` that began at ``started``."""
        now = self._clock()
        self._created += 1
        self._breaker.connect_succeeded()
        self._connect_times_s.append(now - started)
        self._emit(ConnectionOpened(now - started))
        lifetime = self.config.max_lifetime_s * (1 - self._rng.uniform(0, self.config.lifetime_jitter))
        slot.opened(conn, now=now, expires_at=now + lifetime, serial=self._created)

    def _outage_known(self) -> bool:
        """Nothing usable (idle, lent or out for a ping) and the latest evidence is a failure."""
        return not self._open_count() and self._breaker.last_error is not None

    async def _connect_for_caller(self, started: float, timeout_s: float) -> Slot[C]:
        """In an outage, one caller at a time drives a connect bounded by its own wait (Envoy's
        panic routing): the first call after the network heals succeeds without waiting out the
        backoff. Everyone else (and any caller while the upstream rejects us) is told at once."""
        last_error = self._breaker.last_error
        if self._breaker.rejected_reason is not None or self._caller_connecting:
            self._emit(LeaseRefused("unreachable", self._clock() - started))
            trying = "" if self._breaker.rejected_reason else "; reconnecting"
            raise NotConnected(f"upstream unreachable: {last_error}{trying}") from last_error
        slot = self._slots.add(Slot())
        self._caller_connecting = True
        batch = self._breaker.connect_started()
        limit_s = min(timeout_s, self._connect_patience_s())
        try:
            async with asyncio.timeout(limit_s):
                conn = await self._connector.connect()
        except BaseException as exc:
            if slot.state is SlotState.CONNECTING:  # close() may have closed it already
                self._slots.move(slot, SlotState.CLOSED)
            if not isinstance(exc, Exception):
                raise
            self._on_connect_failed(exc, fatal=self._connector.is_fatal(exc), batch=batch, timeout_s=limit_s)
            self._emit(LeaseRefused("unreachable", self._clock() - started))
            raise NotConnected(f"upstream unreachable: {self._breaker.last_error}") from exc
        finally:
            self._caller_connecting = False
        self._connected(slot, conn, started)
        if self._closing or slot.state is not SlotState.CONNECTING:
            if slot.state is SlotState.CONNECTING:
                self._slots.move(slot, SlotState.CLOSED)
            self._spawn(self._close_quietly(conn))
            raise PoolClosed("pool is closing")
        self._slots.move(slot, SlotState.LEASED)
        self._refill()  # the breaker is reset: refill from here
        self._signal()
        return slot

    def _on_connect_failed(
        self,
        exc: Exception,
        *,
        fatal: bool = False,
        batch: int | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Book a failed connect (``batch``: the breaker's token from when it started)."""
        if isinstance(exc, TimeoutError):
            limit_s = self.config.connect_timeout_s if timeout_s is None else timeout_s
            exc = TimeoutError(f"connect timed out after {limit_s:.3g}s")
        self._connect_failures += 1
        backoff_s = self._breaker.connect_failed(exc, fatal=fatal, started=batch)
        self._emit(ConnectionFailed(exc, backoff_s))
        log.warning("upstream connect failed (%s); next attempt in %.2fs", exc, backoff_s)
        # The oldest waiter learns at once that the upstream is unreachable; the
        # caller above may retry within its own deadline.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                failure = NotConnected(f"upstream connect failed: {exc}")
                failure.__cause__ = exc
                waiter.set_exception(failure)
                break
        self._signal()
        self._refill()

    def _evict(self, slot: Slot[C], reason: str) -> None:
        self._slots.move(slot, SlotState.CLOSED)
        self._evicted[reason] = self._evicted.get(reason, 0) + 1
        self._emit(ConnectionEvicted(reason, self._clock() - slot.created_at))
        self._spawn(self._close_quietly(slot.conn))
        self._signal()

    async def _close_quietly(self, conn: C) -> None:
        try:
            await self._connector.close(conn)
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
        changed = self._breaker.update_serving(
            ready=self.ready, closing=self._closing, open_count=self._open_count()
        )
        if changed is not None:
            self._emit(changed)
        self._changed.set()

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()
