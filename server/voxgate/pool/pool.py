"""A warm pool of connections, generic over the connection type.

The pool knows nothing of DashScope: a :class:`~voxgate.pool.connector.Connector`
opens, closes and probes its connections, and it lends them through
:meth:`Pool.lease`. Every decision (lend, queue, open, evict) is plain synchronous
bookkeeping; network I/O (connect, close, ping) runs in tasks outside it, so no lock
is needed on the single event loop. Each connection's state is explicit
(:class:`~voxgate.pool.slot.SlotState`); backoff, rejection and the serving state
are the :class:`~voxgate.pool.breaker.Breaker`'s.

Return discipline: a lease goes back to the pool only if the borrower called
:meth:`Lease.mark_reusable` (for the synthesizer: after ``task-finished``).
Anything else — an exception, a cancel, forgetting — closes the connection and
the pool opens a replacement. A dirty connection is never lent again.

Health: a housekeeper (:meth:`Pool.housekeep`, run every ``housekeeping_interval_s``)
pings idle connections, a few at a time (a missing pong within ``ping_timeout_s`` evicts), retires
idle and aged ones before the upstream would cut them, refills, and reports leases
held suspiciously long. A connect the connector calls fatal (bad credentials), or a
fresh connection the upstream closes right after its handshake (quota), makes the
pool *rejected*: :attr:`Pool.serving` turns False with the reason, and the pool
probes only once per ``backoff_max_s`` until a connection proves itself.

Outages (docs/operations.md#detection-and-recovery): a connection out for a ping does not
count against ``max_size``; a lent connection that went silent before its task started makes
the pool check every idle one at once; once nothing usable is left, callers are told
:class:`NotConnected` (UNAVAILABLE) instead of waiting, and one caller at a time may drive a
connect of its own, so the first call after the network heals succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import TypeVar

from voxgate.pool.base import PoolBase
from voxgate.pool.config import OVERFLOW_OPEN
from voxgate.pool.errors import ConnectFailed, NotConnected, PoolClosed, PoolTimeout, Unresponsive
from voxgate.pool.events import (
    EVICT_DISCARDED,
    EVICT_IDLE,
    EVICT_LIFETIME,
    EVICT_OVERFLOW,
    EVICT_PING,
    EVICT_SHUTDOWN,
    EVICT_SURPLUS,
    EVICT_UNRESPONSIVE,
    LeaseGranted,
    LeaseHeldLong,
    LeaseRefused,
    PoolStats,
)
from voxgate.pool.slot import Lease, Slot, SlotState

log = logging.getLogger(__name__)

C = TypeVar("C")


class Pool(PoolBase[C]):
    """Lends warm connections FIFO, opens them ahead of demand, and drops dirty ones.

    ``Pool(connector, config=..., listeners=...)``: call :meth:`start` once, then
    :meth:`lease` per request, and :meth:`close` at the end. Every listener gets each
    :data:`~voxgate.pool.events.PoolEvent`. ``clock`` (default: the event loop's,
    :func:`~voxgate.pool.base.loop_clock`) and ``rng`` are injectable for tests.
    """

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
    def in_use(self) -> int:
        """Pooled connections lent right now (overflow connections not counted); cheaper than stats()."""
        return self._slots.count(SlotState.LEASED)

    @property
    def serving(self) -> bool:
        """Ready once, not rejected by the upstream, not closing: what a readiness probe wants."""
        return self._breaker.serving

    @property
    def rejected_reason(self) -> str | None:
        """Why the upstream is refusing us (fatal connect error, close right after open), else None."""
        return self._breaker.rejected_reason

    @property
    def last_connect_error(self) -> BaseException | None:
        """The error of the latest failed connect, cleared by the next success."""
        return self._breaker.last_error

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
        if slot is None and self._outage_known():
            slot = await self._connect_for_caller(started, timeout_s)
        elif slot is None:
            if self.config.overflow == OVERFLOW_OPEN and self._at_capacity():
                slot = await self._open_overflow(started, timeout_s)
            else:
                slot = await self._wait_for_slot(started, timeout_s)
        now = self._clock()
        reused = slot.uses > 0
        warm = not slot.overflow and slot.serial <= opened_before
        slot.leased_at = now
        slot.held_long_reported = False
        self._leases += 1
        self._warm_leases += warm
        self._reused_leases += reused
        self._queued_leases += queued
        self._overflow_leases += slot.overflow
        lease = Lease(slot.conn, reused, now - started, now - slot.created_at, slot)
        self._emit(LeaseGranted(lease.wait_s, reused, warm, lease.age_s, queued, slot.overflow))
        return lease

    def release(self, lease: Lease[C]) -> None:
        """Give back a lease from :meth:`acquire`; reuse depends on :meth:`Lease.mark_reusable`."""
        self._release(lease)

    def stats(self) -> PoolStats:
        count = self._slots.count
        return PoolStats(
            idle=count(SlotState.IDLE),
            in_use=count(SlotState.LEASED),
            connecting=count(SlotState.CONNECTING),
            checking=count(SlotState.PINGING),
            pending=len(self._waiters),
            overflow_in_use=count(SlotState.LEASED, overflow=True),
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
            serving=self._breaker.serving,
            closing=self._closing,
            rejected=self._breaker.rejected_reason is not None,
        )

    def __repr__(self) -> str:
        count = self._slots.count
        overflow, checking = count(SlotState.LEASED, overflow=True), count(SlotState.PINGING)
        extra = f" overflow={overflow}" if overflow else ""
        extra += f" checking={checking}" if checking else ""
        extra += " rejected" if self._breaker.rejected_reason else ""
        extra += " closing" if self._closing else ""
        return (
            f"<Pool idle={count(SlotState.IDLE)} in_use={count(SlotState.LEASED)}"
            f" connecting={count(SlotState.CONNECTING)}"
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
        # Routine pings a few at a time: the others stay lendable (docs/operations.md#detection-and-recovery).
        pings_left = self.config.max_concurrent_pings - self._slots.count(SlotState.PINGING)
        for slot in self._slots.idle():
            if slot.state is not SlotState.IDLE:
                continue  # moved by what an earlier eviction set off
            reason = self._unusable_reason(slot)
            if reason in (EVICT_IDLE, EVICT_LIFETIME):
                if retirements_left == 0:
                    continue
                retirements_left -= 1
            if reason is not None:
                self._evict_unusable(slot, reason)
            elif pings_left > 0 and self._ping_due(slot, now):
                pings_left -= 1
                self._start_check(slot, self.config.ping_timeout_s)
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
        for slot in self._slots.idle():
            self._evict(slot, EVICT_SHUTDOWN)
        if self._leased_total() and grace_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    while self._leased_total():
                        await self._wait_change()
        for slot in self._slots.in_state(SlotState.LEASED):
            # Force-closing makes the borrower fail; its release then finds the slot closed.
            self._evict(slot, EVICT_SHUTDOWN)
        await self._drain_tasks()
        # A ping or connect cancelled before its first step never ran its own cleanup.
        for slot in self._slots.in_state(SlotState.PINGING):
            self._evict(slot, EVICT_SHUTDOWN)
        for slot in self._slots.in_state(SlotState.CONNECTING):
            if not slot.overflow:  # an overflow connect belongs to its acquire(), still running
                self._slots.move(slot, SlotState.CLOSED)
        await self._drain_tasks()

    # -- lending ---------------------------------------------------------------------------

    def _leased_total(self) -> int:
        return self._slots.count(SlotState.LEASED) + self._slots.count(SlotState.LEASED, overflow=True)

    def _at_capacity(self) -> bool:
        return self._sized_count() + self._slots.count(SlotState.CONNECTING) >= self.config.max_size

    def _take_idle(self) -> Slot[C] | None:
        """Lend the oldest idle connection that passes the borrow check; evict failures."""
        while (slot := self._slots.oldest_idle()) is not None:
            reason = self._unusable_reason(slot)
            if reason is None:
                self._slots.move(slot, SlotState.LEASED)
                return slot
            self._evict_unusable(slot, reason)
        self._refill()
        return None

    async def _open_overflow(self, started: float, timeout_s: float) -> Slot[C]:
        """Open a temporary connection for one lease (overflow policy); it is closed on release."""
        slot = self._slots.add(Slot(overflow=True))
        try:
            async with asyncio.timeout(min(timeout_s, self.config.connect_timeout_s)):
                conn = await self._connector.connect()
        except BaseException as exc:
            self._slots.move(slot, SlotState.CLOSED)
            if not isinstance(exc, Exception):
                raise
            self._emit(LeaseRefused("overflow_connect_failed", self._clock() - started))
            if isinstance(exc, TimeoutError):
                raise ConnectFailed("overflow connect timed out") from exc
            raise ConnectFailed(f"overflow connect failed: {exc}") from exc
        slot.opened(conn, now=self._clock(), expires_at=math.inf)
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            raise PoolClosed("pool is closing")
        self._slots.move(slot, SlotState.LEASED)
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
                # We were handed a connection in the same tick we gave up: pass it on
                # (unless close() has force-closed it meanwhile).
                slot = waiter.result()
                if slot.state is SlotState.LEASED:
                    self._return_clean(slot)
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                self._timeouts += 1
                self._emit(LeaseRefused("timeout", self._clock() - started))
                if self._slots.count(SlotState.LEASED) >= self.config.max_size:
                    busy = f"no upstream connection free within {timeout_s:.3g}s ({self!r})"
                    raise PoolTimeout(busy) from None
                # Not busy: the connections are out for a check or still connecting. That is
                # the upstream's availability, not voxgate's capacity.
                last_error = self._breaker.last_error
                why = f": {last_error}" if last_error is not None else f" ({self!r})"
                unusable = f"no usable upstream connection within {timeout_s:.3g}s{why}"
                raise NotConnected(unusable) from last_error
            raise

    def _release(self, lease: Lease[C]) -> None:
        slot = lease._slot
        if lease._returned or slot.state is not SlotState.LEASED:
            return  # released twice, or force-closed by shutdown
        lease._returned = True
        if slot.overflow:
            self._evict(slot, EVICT_OVERFLOW)
            return
        if not lease.reusable:
            if self._connector.unresponsive(slot.conn):
                self._evict(slot, EVICT_UNRESPONSIVE)
                self._suspect_the_rest()
            else:
                self._evict(slot, EVICT_DISCARDED)
            self._refill()
            return
        slot.uses += 1
        self._breaker.connection_proved(slot.created_at)
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
        return interval is not None and now - slot.checked_at >= interval

    def _start_check(self, slot: Slot[C], timeout_s: float) -> None:
        self._slots.move(slot, SlotState.PINGING)
        check = asyncio.get_running_loop().create_task(self._check(slot, timeout_s))
        self._cancel_on_close.add(check)  # a ping, like a connect, is cancelled by close()
        check.add_done_callback(self._cancel_on_close.discard)

    def _suspect_the_rest(self) -> None:
        """A lent connection went silent: ping every idle one at once, none lent meanwhile."""
        for slot in self._slots.idle():
            if self._unusable_reason(slot) is None:
                self._start_check(slot, min(self.config.check_timeout_s, self.config.ping_timeout_s))
        self._lost_everything("a connection went silent before its task started")

    def _lost_everything(self, what: str) -> None:
        """If nothing usable is left, that is an outage: back off, and tell every waiter now."""
        if self._open_count() or self._closing:
            return
        error = Unresponsive(f"{what}; no usable upstream connection left")
        # One failure for the breaker, like a batch of failed connects: callers now drive the
        # reconnect (Pool.acquire) instead of waiting on connects that may never answer.
        backoff_s = self._breaker.connect_failed(error, fatal=False)
        log.warning("upstream unresponsive (%s); next connect in %.2fs", error, backoff_s)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                failure = NotConnected(f"upstream unreachable: {error}")
                failure.__cause__ = error
                waiter.set_exception(failure)
        self._signal()

    async def _check(self, slot: Slot[C], timeout_s: float) -> None:
        """Ping an idle connection taken out of the idle queue; put it back or evict it."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connector.ping(slot.conn)
        except asyncio.CancelledError:  # close() does not wait out a ping
            self._evict(slot, EVICT_SHUTDOWN)
            raise
        except Exception:
            alive = False
        else:
            alive = True
        if self._closing:
            self._evict(slot, EVICT_SHUTDOWN)
            return
        if not alive:
            self._evict(slot, EVICT_PING)
            self._lost_everything("idle connections stopped answering pings")
            self._refill()
            return
        slot.checked_at = self._clock()
        reason = self._unusable_reason(slot)
        if reason is not None:
            self._evict_unusable(slot, reason)
            self._refill()
            return
        waited_for = any(not waiter.done() for waiter in self._waiters)
        if not waited_for and self._sized_count() >= self.config.max_size:
            self._evict(slot, EVICT_SURPLUS)  # the pool refilled without it meanwhile
            return
        self._hand_over(slot)

    def _report_held_long(self, now: float) -> None:
        limit = self.config.leak_warning_s
        if limit is None:
            return
        for slot in self._slots.in_state(SlotState.LEASED):
            held_s = now - slot.leased_at
            if held_s >= limit and not slot.held_long_reported:
                slot.held_long_reported = True
                self._emit(LeaseHeldLong(held_s, now - slot.created_at))

    def _clear_rejection_if_proven(self, now: float) -> None:
        if self._breaker.rejected_reason is None:
            return
        for slot in self._slots.idle():
            if (
                self._breaker.opened_since_rejection(slot.created_at)
                and now - slot.created_at >= self.config.early_close_s
                and self._connector.is_open(slot.conn)
            ):
                self._breaker.connection_proved(slot.created_at)
                return
