"""Pool bookkeeping through its public surface, with in-memory connections.

Time-based rules (idle, lifetime) run on an injected clock; ordering is driven by
gates (asyncio.Event), never by sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from harness import wait_until
from voxgate.pool import (
    EVICT_CLOSED,
    EVICT_DISCARDED,
    EVICT_IDLE,
    EVICT_LIFETIME,
    EVICT_OVERFLOW,
    EVICT_PING,
    EVICT_REJECTED,
    EVICT_SHUTDOWN,
    EVICT_SURPLUS,
    EVICT_UNRESPONSIVE,
    OVERFLOW_OPEN,
    ClosedAfterOpen,
    ConnectFailed,
    ConnectionEvicted,
    ConnectionFailed,
    HealthChanged,
    LeaseGranted,
    LeaseHeldLong,
    NotConnected,
    Pool,
    PoolClosed,
    PoolConfig,
    PoolEvent,
    PoolTimeout,
)

_ids = itertools.count(1)


@dataclass(eq=False)
class Conn:
    id: int = field(default_factory=lambda: next(_ids))
    open: bool = True
    silent: bool = False
    """Half-open: pings never get an answer."""
    refusal: str | None = None
    """Why the peer closed it, if that was a refusal (quota)."""
    unresponsive: bool = False
    """Lent, it went silent before its task started (the borrower found out)."""


class Upstream:
    """Opens in-memory connections; a gate can hold connects, a flag can fail them."""

    def __init__(self) -> None:
        self.opened: list[Conn] = []
        self.closed: list[Conn] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_with: Exception | None = None
        self.attempts = 0
        self.pings = 0
        self._closed_changed = asyncio.Event()

    async def connect(self) -> Conn:
        self.attempts += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            conn = Conn()
            self.opened.append(conn)
            return conn
        finally:
            self.in_flight -= 1

    async def ping(self, conn: Conn) -> None:
        self.pings += 1
        if conn.silent:
            await asyncio.Event().wait()  # no pong, ever; the pool's ping timeout ends this

    async def close(self, conn: Conn) -> None:
        conn.open = False
        self.closed.append(conn)
        self._closed_changed.set()

    async def wait_closed(self, conn: Conn) -> None:
        """Return once the pool has closed ``conn`` (closing runs in the background)."""
        async with asyncio.timeout(1):
            while conn not in self.closed:
                self._closed_changed.clear()
                await self._closed_changed.wait()


class FakeConnector:
    """A Connector over :class:`Upstream`: PermissionError is fatal, ``Conn.refusal`` a refusal."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def connect(self) -> Conn:
        return await self.upstream.connect()

    async def close(self, conn: Conn) -> None:
        await self.upstream.close(conn)

    def is_open(self, conn: Conn) -> bool:
        return conn.open

    async def ping(self, conn: Conn) -> None:
        await self.upstream.ping(conn)

    def is_fatal(self, error: Exception) -> bool:
        return isinstance(error, PermissionError)

    def unresponsive(self, conn: Conn) -> bool:
        return conn.unresponsive

    def refusal(self, conn: Conn) -> str | None:
        return conn.refusal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_pool(
    upstream: Upstream,
    clock: Clock | None = None,
    events: list[PoolEvent] | None = None,
    rng: random.Random | None = None,
    **config: object,
) -> Pool[Conn]:
    settings: dict[str, object] = {
        "max_size": 2,
        "acquire_timeout_s": 5.0,
        "backoff_initial_s": 60.0,
        "backoff_max_s": 60.0,
        "housekeeping_interval_s": 3600.0,  # tests call housekeep() themselves
    }
    settings.update(config)
    return Pool(
        FakeConnector(upstream),
        config=PoolConfig(**settings),  # type: ignore[arg-type]
        listeners=[events.append] if events is not None else (),
        clock=clock or Clock(),
        rng=rng,
    )


@pytest.fixture
async def pool(upstream: Upstream, clock: Clock) -> AsyncIterator[Pool[Conn]]:
    pool = make_pool(upstream, clock)
    pool.start()
    await pool.wait_ready()
    yield pool
    await pool.close()


# --- sizing and prewarm ------------------------------------------------------------------------


async def test_prewarm_opens_min_idle_with_bounded_concurrent_connects(upstream: Upstream) -> None:
    upstream.gate.clear()
    pool = make_pool(upstream, max_size=10, max_concurrent_connects=3)
    pool.start()
    await asyncio.sleep(0)  # let the connect tasks reach the gate
    assert upstream.in_flight == 3
    assert not pool.ready
    upstream.gate.set()
    await pool.wait_ready()
    assert len(upstream.opened) == 10
    assert upstream.max_in_flight == 3
    assert repr(pool) == "<Pool idle=10 in_use=0 connecting=0 pending=0 max=10>"
    await pool.close()


async def test_ready_min_below_min_idle_readies_early(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_size=4, min_idle=4, ready_min=1, max_concurrent_connects=1)
    pool.start()
    await pool.wait_ready()
    assert pool.stats().idle >= 1
    await pool.close()


def test_config_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError, match="min_idle"):
        PoolConfig(max_size=2, min_idle=3)
    with pytest.raises(ValueError, match="max_size"):
        PoolConfig(max_size=0)
    with pytest.raises(ValueError, match="acquire_timeout_s"):
        PoolConfig(acquire_timeout_s=0)


# --- return discipline --------------------------------------------------------------------------


async def test_clean_connection_is_reused(pool: Pool[Conn], upstream: Upstream) -> None:
    async with pool.lease() as first:
        assert not first.reused
        first.mark_reusable()
    seen = {first.conn.id}
    async with pool.lease() as second:
        second.mark_reusable()
    async with pool.lease() as third:
        third.mark_reusable()
    seen |= {second.conn.id, third.conn.id}
    assert third.reused and third.conn is first.conn  # FIFO: both connections take turns
    assert seen == {c.id for c in upstream.opened} and len(upstream.opened) == 2
    stats = pool.stats()
    assert (stats.leases, stats.reused_leases, stats.warm_leases, stats.created) == (3, 1, 3, 2)
    assert stats.reuse_ratio == 1.0  # prewarmed: no request paid a connect


async def test_connection_not_marked_reusable_is_closed_and_replaced(
    pool: Pool[Conn], upstream: Upstream
) -> None:
    async with pool.lease() as lease:
        pass
    await upstream.wait_closed(lease.conn)
    await pool.wait_ready()
    assert pool.stats().evicted == {EVICT_DISCARDED: 1}
    assert len(upstream.opened) == 3


async def test_error_inside_the_lease_discards_the_connection(pool: Pool[Conn], upstream: Upstream) -> None:
    with pytest.raises(RuntimeError):
        async with pool.lease() as lease:
            raise RuntimeError("task failed")
    await upstream.wait_closed(lease.conn)
    async with pool.lease() as other:
        assert other.conn is not lease.conn


async def test_mark_reusable_survives_a_later_error(pool: Pool[Conn], upstream: Upstream) -> None:
    # The task ended cleanly; failing to tell the client afterwards does not dirty the socket.
    with pytest.raises(ConnectionResetError):
        async with pool.lease() as lease:
            lease.mark_reusable()
            raise ConnectionResetError("client went away")
    assert lease.conn not in upstream.closed
    assert pool.stats().idle == 2


async def test_release_twice_is_harmless(pool: Pool[Conn]) -> None:
    lease = await pool.acquire()
    lease.mark_reusable()
    pool.release(lease)
    pool.release(lease)
    assert pool.stats().idle == 2 and pool.stats().in_use == 0


async def test_a_late_second_release_leaves_a_relent_connection_alone(pool: Pool[Conn]) -> None:
    first = await pool.acquire()
    first.mark_reusable()
    pool.release(first)
    held = [await pool.acquire(), await pool.acquire()]
    assert first.conn in {lease.conn for lease in held}  # lent again, to someone else
    pool.release(first)
    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.evicted) == (0, 2, {})
    for lease in held:
        pool.release(lease)


# --- borrow checks ------------------------------------------------------------------------------


async def test_closed_idle_connection_is_never_lent(pool: Pool[Conn], upstream: Upstream) -> None:
    upstream.opened[0].open = False  # the peer hung up while it sat idle
    async with pool.lease() as lease:
        assert lease.conn is upstream.opened[1]
        lease.mark_reusable()
    assert pool.stats().evicted == {EVICT_CLOSED: 1}


@pytest.mark.parametrize(("advance_s", "reason"), [(50.0, EVICT_IDLE), (600.0, EVICT_LIFETIME)])
async def test_expired_connections_are_replaced_not_lent(
    upstream: Upstream, clock: Clock, advance_s: float, reason: str
) -> None:
    pool = make_pool(upstream, clock, max_size=1, max_idle_s=50.0, max_lifetime_s=600.0, lifetime_jitter=0.0)
    pool.start()
    await pool.wait_ready()
    old = upstream.opened[0]
    clock.now += advance_s
    async with pool.lease() as lease:
        assert lease.conn is not old and not lease.reused
        lease.mark_reusable()
    assert pool.stats().evicted == {reason: 1}
    await pool.close()


async def test_lifetime_jitter_spreads_expiry(upstream: Upstream, clock: Clock) -> None:
    pool = make_pool(
        upstream,
        clock,
        # Seeded: with 8 independent draws, all on one side of 75 s happens 1 run in 128.
        rng=random.Random(12),
        max_size=8,
        max_lifetime_s=100.0,
        lifetime_jitter=0.5,
        max_idle_s=1000.0,
    )
    pool.start()
    await pool.wait_ready()
    clock.now += 75.0  # lifetimes lie in (50, 100]: some, not all, expired
    leases = [await pool.acquire(timeout_s=1) for _ in range(8)]
    evicted = pool.stats().evicted.get(EVICT_LIFETIME, 0)
    assert 0 < evicted < 8
    for lease in leases:
        pool.release(lease)
    await pool.close()


# --- waiting --------------------------------------------------------------------------------------


async def test_a_lease_that_waited_for_a_connect_is_not_warm(upstream: Upstream) -> None:
    upstream.gate.clear()
    pool = make_pool(upstream, max_size=1)
    pool.start()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    upstream.gate.set()
    lease = await waiting
    assert pool.stats().warm_leases == 0 and pool.stats().reuse_ratio == 0.0
    pool.release(lease)
    await pool.close()


async def test_waiters_are_served_first_in_first_out(pool: Pool[Conn]) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    order: list[str] = []

    async def borrow(name: str) -> None:
        async with pool.lease() as lease:
            order.append(name)
            lease.mark_reusable()

    waiters = [asyncio.create_task(borrow(name)) for name in "abc"]
    await asyncio.sleep(0)
    assert pool.stats().pending == 3
    for lease in held:
        lease.mark_reusable()
        pool.release(lease)
    await asyncio.gather(*waiters)
    assert order == ["a", "b", "c"]
    stats = pool.stats()
    assert stats.queued_leases == 3 and stats.created == 2


async def test_acquire_times_out_with_pool_timeout(pool: Pool[Conn]) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    with pytest.raises(PoolTimeout, match="no upstream connection free"):
        await pool.acquire(timeout_s=0.01)
    stats = pool.stats()
    assert stats.timeouts == 1 and stats.pending == 0
    for lease in held:
        pool.release(lease)


async def test_cancelled_waiter_loses_no_connection(pool: Pool[Conn]) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    held[0].mark_reusable()
    pool.release(held[0])  # handed to the waiter in this very tick...
    waiter.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.pending) == (1, 1, 0)
    pool.release(held[1])


async def test_lease_events_report_wait_and_reuse(upstream: Upstream) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(upstream, events=events, max_size=1)
    pool.start()
    await pool.wait_ready()
    async with pool.lease() as lease:
        lease.mark_reusable()
    async with pool.lease():
        pass
    grants = [e for e in events if isinstance(e, LeaseGranted)]
    assert [g.reused for g in grants] == [False, True]
    assert [g.warm for g in grants] == [True, True]
    async with pool.lease() as lease:  # the discarded connection's replacement
        assert not lease.reused
    assert any(isinstance(e, ConnectionEvicted) and e.reason == EVICT_DISCARDED for e in events)
    await pool.close()


# --- connect failures -----------------------------------------------------------------------------


async def test_failed_connect_fails_the_oldest_waiter_then_the_next_caller_tries_once(
    upstream: Upstream,
) -> None:
    upstream.fail_with = ConnectionRefusedError("refused")
    pool = make_pool(upstream, max_size=2, min_idle=0)
    pool.start()
    with pytest.raises(NotConnected, match="refused") as info:
        await pool.acquire()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    attempts = upstream.attempts
    # Backing off (60 s here) with nothing open: the next caller drives one connect of its own
    # (bounded by its wait) instead of failing on the backoff alone.
    with pytest.raises(NotConnected, match="unreachable"):
        await pool.acquire()
    assert upstream.attempts == attempts + 1
    assert pool.last_connect_error is not None
    await pool.close()


async def test_after_the_network_heals_the_first_caller_connects_at_once_and_the_pool_refills(
    upstream: Upstream,
) -> None:
    upstream.fail_with = OSError("network unreachable")
    pool = make_pool(upstream, max_size=3, min_idle=3)
    pool.start()
    await wait_until(lambda: pool.stats().connect_failures >= 1 and pool.stats().connecting == 0, "failures")
    upstream.fail_with = None  # healed, while the pool still backs off for up to 60 s
    async with pool.lease(timeout_s=1) as lease:
        assert not lease.reused
        lease.mark_reusable()
    assert pool.last_connect_error is None
    await wait_until(lambda: pool.stats().idle == 3, "refilled from the first success, not after the backoff")
    await pool.close()


async def test_one_caller_at_a_time_drives_a_connect_while_nothing_is_connected(upstream: Upstream) -> None:
    upstream.fail_with = OSError("down")
    pool = make_pool(upstream, max_size=2, min_idle=0)
    pool.start()
    with pytest.raises(NotConnected):
        await pool.acquire()
    upstream.gate.clear()
    upstream.fail_with = None
    first = asyncio.create_task(pool.acquire(timeout_s=5))
    await wait_until(lambda: upstream.in_flight == 1, "the first caller's connect")
    attempts = upstream.attempts
    with pytest.raises(NotConnected, match="reconnecting"):
        await pool.acquire()  # told at once, no second connect
    assert upstream.attempts == attempts
    upstream.gate.set()
    lease = await first
    pool.release(lease)
    await pool.close()


async def test_a_callers_connect_is_bounded_by_what_connects_have_shown(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_size=1, min_idle=1, check_timeout_s=0.05, connect_timeout_s=30.0)
    pool.start()
    await pool.wait_ready()  # one connect, in no time: a caller's connect may take check_timeout_s
    upstream.opened[0].open = False
    upstream.fail_with = OSError("down")
    pool.housekeep()
    await wait_until(lambda: pool.stats().connect_failures == 1, "the replacement failed")
    upstream.fail_with = None
    upstream.gate.clear()  # a blackhole: the connect never completes
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NotConnected, match=r"timed out after 0\.05s"):
        await pool.acquire(timeout_s=10)
    assert loop.time() - started < 1.0  # not the 10 s wait, not the 30 s connect timeout
    upstream.gate.set()
    await pool.close()


async def test_a_batch_of_failed_connects_counts_once(upstream: Upstream) -> None:
    events: list[PoolEvent] = []
    upstream.gate.clear()
    upstream.fail_with = OSError("down")
    pool = make_pool(upstream, events=events, max_size=4, max_concurrent_connects=4, backoff_initial_s=1.0)
    pool.start()
    await wait_until(lambda: upstream.in_flight == 4, "a batch of four connects")
    upstream.gate.set()
    await wait_until(lambda: pool.stats().connect_failures == 4, "all four failed")
    backoffs = [e.backoff_s for e in events if isinstance(e, ConnectionFailed)]
    # One failure: the first step's ceiling (1 s); each later report is what is left of it (on
    # this clock, which does not move, all of it), not a new, longer backoff.
    assert len(backoffs) == 4 and backoffs[0] <= 1.0
    assert backoffs == pytest.approx([backoffs[0]] * 4)
    await pool.close()


async def test_connect_timeout_counts_as_a_failure(upstream: Upstream) -> None:
    upstream.gate.clear()
    pool = make_pool(upstream, max_size=1, min_idle=0, connect_timeout_s=0.01)
    pool.start()
    with pytest.raises(ConnectFailed, match="timed out"):
        await pool.acquire()
    assert pool.stats().connect_failures == 1
    await pool.close()


async def test_backoff_grows_and_success_resets_it(upstream: Upstream) -> None:
    backoffs: list[float] = []
    four_failures = asyncio.Event()

    def on_event(event: PoolEvent) -> None:
        if isinstance(event, ConnectionFailed):
            backoffs.append(event.backoff_s)
            if len(backoffs) == 4:
                four_failures.set()

    pool = Pool(
        FakeConnector(upstream),
        config=PoolConfig(max_size=1, backoff_initial_s=0.001, backoff_max_s=0.004),
        listeners=[on_event],
    )
    upstream.fail_with = OSError("down")
    pool.start()
    await asyncio.wait_for(four_failures.wait(), 5)
    # Equal jitter: each wait lies in [ceiling/2, ceiling], ceilings 1, 2, 4, 4 ms.
    for backoff, ceiling in zip(backoffs, (0.001, 0.002, 0.004, 0.004), strict=False):
        assert ceiling / 2 <= backoff <= ceiling
    upstream.fail_with = None
    await pool.wait_ready()
    assert pool.last_connect_error is None
    await pool.close()


# --- shutdown ---------------------------------------------------------------------------------------


async def test_close_refuses_waiters_and_closes_everything(pool: Pool[Conn], upstream: Upstream) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    await pool.close()
    with pytest.raises(PoolClosed):
        await waiter
    with pytest.raises(PoolClosed):
        await pool.acquire()
    assert all(not conn.open for conn in upstream.opened)
    assert pool.stats().evicted == {EVICT_SHUTDOWN: 2}
    for lease in held:
        pool.release(lease)  # the borrower finishing late is harmless


async def test_close_waits_for_leases_within_grace(pool: Pool[Conn], upstream: Upstream) -> None:
    lease = await pool.acquire()
    closing = asyncio.create_task(pool.close(grace_s=5))
    await asyncio.sleep(0)
    assert lease.conn.open and not closing.done()
    lease.mark_reusable()
    pool.release(lease)
    await closing
    assert all(not conn.open for conn in upstream.opened)


# --- housekeeping: keepalive, eviction, leaks ---------------------------------------------------


async def test_idle_connections_are_pinged_when_due_and_kept(
    pool: Pool[Conn], upstream: Upstream, clock: Clock
) -> None:
    pool.housekeep()
    assert upstream.pings == 0  # just opened: nothing due yet
    clock.now += 20.0  # ping_interval_s
    pool.housekeep()
    await wait_until(lambda: pool.stats().idle == 2, "pool state")
    assert upstream.pings == 2
    assert pool.stats().evicted == {}


async def test_a_silent_peer_is_evicted_after_ping_timeout_and_replaced(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, ping_timeout_s=0.05)
    pool.start()
    await pool.wait_ready()
    half_open = upstream.opened[0]
    half_open.silent = True
    clock.now += 20.0
    pool.housekeep()
    assert pool.stats().checking == 2  # out for a ping: not lendable meanwhile
    await upstream.wait_closed(half_open)
    await wait_until(lambda: pool.stats().idle == 2, "pool state")
    assert pool.stats().evicted == {EVICT_PING: 1}
    assert len(upstream.opened) == 3
    async with pool.lease() as lease:
        assert lease.conn is not half_open
        lease.mark_reusable()
    await pool.close()


async def test_routine_pings_go_a_few_at_a_time(upstream: Upstream, clock: Clock) -> None:
    pool = make_pool(upstream, clock, max_size=6, max_concurrent_pings=2, ping_timeout_s=3600.0)
    pool.start()
    await pool.wait_ready()
    for conn in upstream.opened:
        conn.silent = True
    clock.now += 20.0  # every one of them due
    pool.housekeep()
    pool.housekeep()
    assert (pool.stats().checking, pool.stats().idle) == (2, 4)  # the rest stay lendable
    await pool.close()


async def test_connections_out_for_a_ping_do_not_count_against_the_pool_size(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_size=2, max_concurrent_pings=2, ping_timeout_s=3600.0)
    pool.start()
    await pool.wait_ready()
    for conn in upstream.opened:
        conn.silent = True  # half-open: their pings hang
    clock.now += 20.0
    pool.housekeep()
    assert pool.stats().checking == 2
    # Not RESOURCE_EXHAUSTED after the wait: nothing is doing work, so a replacement connects.
    async with pool.lease(timeout_s=1) as lease:
        assert lease.conn not in upstream.opened[:2]
        lease.mark_reusable()
    await pool.close()


async def test_a_wait_that_ends_while_nothing_works_is_unavailable_not_busy(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_size=1, ping_timeout_s=3600.0)
    pool.start()
    await pool.wait_ready()
    upstream.opened[0].silent = True
    upstream.gate.clear()  # its replacement connect hangs too
    clock.now += 20.0
    pool.housekeep()
    with pytest.raises(NotConnected, match=r"no usable upstream connection within 0\.05s"):
        await pool.acquire(timeout_s=0.05)
    upstream.gate.set()
    await pool.close()


async def test_a_connection_silent_before_its_task_started_gets_the_idle_ones_checked(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_size=4, ping_timeout_s=3600.0, check_timeout_s=0.05)
    pool.start()
    await pool.wait_ready()
    lease = await pool.acquire()
    dead, alive = upstream.opened[1], upstream.opened[2]
    dead.silent = True
    lease.conn.unresponsive = True  # the borrower saw no task-started, then no pong
    pool.release(lease)
    stats = pool.stats()
    assert stats.evicted == {EVICT_UNRESPONSIVE: 1}
    assert (stats.checking, stats.idle) == (3, 0)  # all pinged at once, none lent meanwhile
    await upstream.wait_closed(dead)
    await wait_until(lambda: pool.stats().checking == 0, "checks done")
    assert alive.open and pool.stats().evicted[EVICT_PING] == 1  # the check's short timeout, not an hour
    await pool.close()


async def test_when_the_check_leaves_nothing_usable_waiters_are_told_unavailable_at_once(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_size=2, ping_timeout_s=3600.0, check_timeout_s=0.05)
    pool.start()
    await pool.wait_ready()
    upstream.gate.clear()  # replacements hang (a blackhole)
    lease = await pool.acquire()
    upstream.opened[1].silent = True
    lease.conn.unresponsive = True
    pool.release(lease)
    with pytest.raises(NotConnected, match="stopped answering"):
        await pool.acquire(timeout_s=10)  # the check's 0.05 s, not the 10 s wait
    assert pool.last_connect_error is not None
    upstream.gate.set()
    await pool.close()


async def test_a_connection_back_from_its_ping_into_a_full_pool_is_closed(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_size=1)
    pool.start()
    await pool.wait_ready()
    pinged = upstream.opened[0]
    gate = asyncio.Event()
    original_ping = upstream.ping

    async def slow_ping(conn: Conn) -> None:
        await gate.wait()
        await original_ping(conn)

    upstream.ping = slow_ping  # type: ignore[method-assign]
    clock.now += 20.0
    pool.housekeep()
    async with pool.lease(timeout_s=1) as lease:  # a replacement, opened meanwhile
        lease.mark_reusable()
    gate.set()
    await upstream.wait_closed(pinged)
    assert pool.stats().evicted == {EVICT_SURPLUS: 1} and pool.stats().idle == 1
    await pool.close()


async def test_close_does_not_wait_out_a_ping(upstream: Upstream, clock: Clock) -> None:
    pool = make_pool(upstream, clock, ping_timeout_s=3600.0)
    pool.start()
    await pool.wait_ready()
    upstream.opened[0].silent = True
    clock.now += 20.0
    pool.housekeep()
    await wait_until(lambda: pool.stats().checking == 1, "the silent one still out for its ping")
    async with asyncio.timeout(10):
        await pool.close()
    assert all(not conn.open for conn in upstream.opened)
    assert pool.stats().evicted == {EVICT_SHUTDOWN: 2}


async def test_close_right_after_a_ping_started_still_closes_that_connection(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock)
    pool.start()
    await pool.wait_ready()
    clock.now += 20.0
    pool.housekeep()  # both out for a ping, whose tasks have not run a step yet...
    await pool.close()  # ...when close() cancels them
    assert all(not conn.open for conn in upstream.opened)
    stats = pool.stats()
    assert (stats.checking, stats.connecting, stats.evicted) == (0, 0, {EVICT_SHUTDOWN: 2})


async def test_housekeeper_retires_idle_and_aged_connections_before_anyone_asks(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_idle_s=50.0, ping_interval_s=None)
    pool.start()
    await pool.wait_ready()
    first = list(upstream.opened)
    clock.now += 50.0
    pool.housekeep()
    await wait_until(lambda: len(upstream.opened) == 4 and pool.stats().idle == 2, "pool state")
    assert all(not conn.open for conn in first)
    assert pool.stats().evicted == {EVICT_IDLE: 2}
    await pool.close()


async def test_connections_prewarmed_together_are_retired_in_a_trickle(
    upstream: Upstream, clock: Clock
) -> None:
    pool = make_pool(upstream, clock, max_size=10, max_concurrent_connects=3, ping_interval_s=None)
    pool.start()
    await pool.wait_ready()
    clock.now += 50.0  # every one of them idle past max_idle_s at once
    pool.housekeep()
    assert pool.stats().evicted == {EVICT_IDLE: 3}
    assert pool.stats().idle == 7  # still lendable meanwhile
    await wait_until(lambda: pool.stats().idle == 10, "the three replaced")
    pool.housekeep()
    assert pool.stats().evicted == {EVICT_IDLE: 6}
    await pool.close()


async def test_refill_after_mass_loss_keeps_connects_under_the_cap(upstream: Upstream, clock: Clock) -> None:
    pool = make_pool(upstream, clock, max_size=10, max_concurrent_connects=3)
    pool.start()
    await pool.wait_ready()
    clock.now += 10.0
    upstream.max_in_flight = 0
    upstream.gate.clear()
    for conn in upstream.opened:
        conn.open = False  # the upstream restarted: every socket is gone
    pool.housekeep()
    await wait_until(lambda: upstream.in_flight == 3, "pool state")
    upstream.gate.set()
    await wait_until(lambda: pool.stats().idle == 10, "pool state")
    assert upstream.max_in_flight == 3
    assert pool.stats().evicted == {EVICT_CLOSED: 10}
    await pool.close()


async def test_a_lease_held_too_long_is_reported_once(upstream: Upstream, clock: Clock) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(upstream, clock, events, leak_warning_s=300.0)
    pool.start()
    await pool.wait_ready()
    lease = await pool.acquire()
    clock.now += 299.0
    pool.housekeep()
    clock.now += 2.0
    pool.housekeep()
    pool.housekeep()
    held = [event for event in events if isinstance(event, LeaseHeldLong)]
    assert len(held) == 1 and held[0].held_s == 301.0
    pool.release(lease)
    await pool.close()


# --- overflow policy ----------------------------------------------------------------------------


async def test_overflow_policy_lends_a_temporary_connection_closed_after_use(
    upstream: Upstream, clock: Clock
) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(upstream, clock, events, max_size=1, overflow=OVERFLOW_OPEN)
    pool.start()
    await pool.wait_ready()
    pooled = await pool.acquire()
    extra = await pool.acquire()
    assert extra.conn is not pooled.conn
    assert pool.stats().overflow_in_use == 1 and pool.stats().in_use == 1
    extra.mark_reusable()  # even clean, an overflow connection is not kept
    pool.release(extra)
    await upstream.wait_closed(extra.conn)
    pooled.mark_reusable()
    pool.release(pooled)
    stats = pool.stats()
    assert (stats.overflow_leases, stats.overflow_in_use, stats.idle) == (1, 0, 1)
    assert stats.evicted == {EVICT_OVERFLOW: 1}
    assert [e.overflow for e in events if isinstance(e, LeaseGranted)] == [False, True]
    await pool.close()


async def test_wait_policy_queues_instead_of_overflowing(pool: Pool[Conn], upstream: Upstream) -> None:
    leases = [await pool.acquire(), await pool.acquire()]
    with pytest.raises(PoolTimeout):
        await pool.acquire(timeout_s=0.01)
    assert len(upstream.opened) == 2 and pool.stats().overflow_leases == 0
    for lease in leases:
        pool.release(lease)


# --- rejection: credentials, quota ----------------------------------------------------------------


async def test_a_fatal_connect_error_stops_the_retrying_and_turns_not_serving(
    upstream: Upstream, clock: Clock
) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(upstream, clock, events, max_size=2, backoff_initial_s=0.1, backoff_max_s=30.0)
    pool.start()
    await pool.wait_ready()
    assert pool.stats().serving
    upstream.fail_with = PermissionError("HTTP 401")
    for conn in upstream.opened:
        conn.open = False
    clock.now += 10.0
    pool.housekeep()
    await wait_until(lambda: pool.rejected_reason is not None and pool.stats().connecting == 0, "pool state")
    assert not pool.stats().serving and pool.rejected_reason == "HTTP 401"
    failures = [e for e in events if isinstance(e, ConnectionFailed)]
    assert failures and all(15.0 <= e.backoff_s <= 30.0 for e in failures)  # the slow probe, at once
    attempts = upstream.attempts
    clock.now += 30.0
    pool.housekeep()
    await wait_until(lambda: upstream.attempts > attempts and pool.stats().connecting == 0, "pool state")
    assert upstream.attempts == attempts + 1  # one probe, not one per missing connection
    with pytest.raises(ConnectFailed) as info:
        await pool.acquire()
    assert isinstance(info.value.__cause__, PermissionError)
    assert [e.serving for e in events if isinstance(e, HealthChanged)] == [True, False]
    await pool.close()


async def test_a_connection_closed_right_after_its_handshake_is_a_rejection_until_one_holds(
    upstream: Upstream, clock: Clock
) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(upstream, clock, events, max_size=1, backoff_initial_s=0.01, backoff_max_s=0.01)
    pool.start()
    await pool.wait_ready()
    upstream.opened[0].refusal = "quota exceeded"
    upstream.opened[0].open = False  # accepted, then dropped before any use
    pool.housekeep()
    assert not pool.stats().serving
    assert pool.stats().evicted == {EVICT_REJECTED: 1}
    failure = next(e for e in events if isinstance(e, ConnectionFailed))
    assert isinstance(failure.error, ClosedAfterOpen)
    assert "quota exceeded" in str(failure.error)
    clock.now += 0.01  # backoff over
    pool.housekeep()
    await wait_until(lambda: pool.stats().idle == 1, "pool state")  # the probe connected...
    assert not pool.stats().serving  # ...but has not proved itself yet
    clock.now += 2.0  # early_close_s
    pool.housekeep()
    assert pool.stats().serving and pool.rejected_reason is None
    assert [e.serving for e in events if isinstance(e, HealthChanged)] == [True, False, True]
    await pool.close()
