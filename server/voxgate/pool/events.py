"""What the pool tells its observers: events, listeners, stats snapshots, and a logging listener."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    connect_s: float


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    error: BaseException
    backoff_s: float


@dataclass(frozen=True, slots=True)
class ConnectionEvicted:
    reason: str
    age_s: float


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    wait_s: float
    reused: bool
    """The connection had already run a task."""
    warm: bool
    """The connection was open before the request asked: no connect on its path."""
    age_s: float
    queued: bool
    overflow: bool = False
    """A temporary connection outside the pool (overflow policy), closed after use."""


@dataclass(frozen=True, slots=True)
class LeaseRefused:
    reason: str
    wait_s: float


@dataclass(frozen=True, slots=True)
class LeaseHeldLong:
    """A lease is out longer than ``leak_warning_s``: a stuck stream or a leak. Sent once per lease."""

    held_s: float
    age_s: float


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """:attr:`Pool.serving` flipped; ``reason`` says why (for a readiness probe and the logs)."""

    serving: bool
    reason: str


PoolEvent = (
    ConnectionOpened
    | ConnectionFailed
    | ConnectionEvicted
    | LeaseGranted
    | LeaseRefused
    | LeaseHeldLong
    | HealthChanged
)
PoolListener = Callable[[PoolEvent], None]

EVICT_CLOSED = "closed"
"""Found closed (peer hung up) when about to be lent."""
EVICT_IDLE = "idle"
EVICT_LIFETIME = "lifetime"
EVICT_DISCARDED = "discarded"
"""The borrower did not mark it reusable (error, cancel, unfinished task)."""
EVICT_PING = "ping_timeout"
"""An idle connection's ping got no pong within ``ping_timeout_s`` (or the ping failed)."""
EVICT_REJECTED = "closed_after_open"
"""Closed by the upstream right after its handshake, unused (see :class:`ClosedAfterOpen`)."""
EVICT_OVERFLOW = "overflow"
"""A temporary overflow connection, closed after its one use."""
EVICT_SHUTDOWN = "shutdown"
EVICT_UNRESPONSIVE = "unresponsive"
"""Lent, it went silent before its task started, then missed a pong (see docs/operations.md)."""
EVICT_SURPLUS = "surplus"
"""Back from a ping while the pool had refilled to ``max_size`` without it (pings do not count against it)."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of the pool; all counters are totals since start."""

    idle: int
    in_use: int
    connecting: int
    checking: int
    """Idle connections out for a ping right now."""
    pending: int
    overflow_in_use: int
    max_size: int
    created: int
    connect_failures: int
    leases: int
    warm_leases: int
    reused_leases: int
    queued_leases: int
    timeouts: int
    overflow_leases: int
    evicted: dict[str, int]
    ready: bool
    serving: bool
    closing: bool
    rejected: bool = False
    """The upstream refuses us (credentials, quota): the breaker probes slowly until it accepts."""

    @property
    def open(self) -> int:
        """Pooled connections open now (idle, in use or being pinged); overflow ones excluded."""
        return self.idle + self.in_use + self.checking

    @property
    def reuse_ratio(self) -> float:
        """Share of leases served by a connection already open when they asked.

        That is, requests that paid no connect: what pooling is for. Prewarmed
        connections count from their first lease; ``reused_leases`` counts only
        connections that had already run a task.
        """
        return self.warm_leases / self.leases if self.leases else 0.0


_WORTH_A_WARNING = (EVICT_PING, EVICT_REJECTED, EVICT_UNRESPONSIVE)


def log_event(event: PoolEvent) -> None:
    """A listener that logs what an operator should see (leaks, health flips, evictions by ping)."""
    if isinstance(event, LeaseHeldLong):
        log.warning(
            "a pooled connection has been lent for %.0fs: a stuck stream, or a lease never released",
            event.held_s,
        )
    elif isinstance(event, HealthChanged):
        log.log(
            logging.INFO if event.serving else logging.WARNING,
            "pool %s: %s",
            "SERVING" if event.serving else "NOT_SERVING",
            event.reason,
        )
    elif isinstance(event, ConnectionEvicted) and event.reason in _WORTH_A_WARNING:
        log.warning("evicted an upstream connection (%s) after %.1fs", event.reason, event.age_s)
