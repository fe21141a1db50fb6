"""Sizing and timing of a :class:`~voxgate.pool.Pool`, and its overflow policies."""

from __future__ import annotations

from dataclasses import dataclass

OVERFLOW_WAIT = "wait"
"""When every connection is busy, wait FIFO up to ``acquire_timeout_s``."""
OVERFLOW_OPEN = "overflow"
"""When every connection is busy, open a temporary connection, closed after use (the vendor's way)."""
OVERFLOW_POLICIES = (OVERFLOW_WAIT, OVERFLOW_OPEN)


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Sizing and timing of a :class:`Pool`. Checks its own invariants."""

    max_size: int = 8
    min_idle: int | None = None
    """Idle connections kept open ahead of demand; ``None`` means ``max_size``."""
    ready_min: int | None = None
    """Open connections needed before :meth:`Pool.wait_ready` returns; ``None`` means ``min_idle``."""
    max_concurrent_connects: int = 4
    acquire_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    max_idle_s: float = 50.0
    """Idle connections older than this are not lent: the upstream drops them at 60 s."""
    max_lifetime_s: float = 600.0
    lifetime_jitter: float = 0.1
    """Each connection's lifetime is cut by up to this fraction, so they don't expire together."""
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0
    """Ceiling of the connect backoff, and the probe interval while the upstream rejects us."""
    ping_interval_s: float | None = 20.0
    """Ping each idle connection this often; ``None`` disables it."""
    ping_timeout_s: float = 20.0
    """A ping without a pong within this evicts the connection (a dead or half-open peer)."""
    max_concurrent_pings: int = 2
    """Idle connections out for a routine ping at once: the rest stay lendable meanwhile."""
    check_timeout_s: float = 1.0
    """A suspicion check (after a connection went silent before its task started) pings every idle
    connection with this timeout; it is also the floor of a connect driven by a caller while
    nothing is connected (4 x the slowest recent connect, capped by ``connect_timeout_s``)."""
    housekeeping_interval_s: float = 1.0
    """How often the housekeeper evicts, pings, refills and looks for leaks."""
    overflow: str = OVERFLOW_WAIT
    """:data:`OVERFLOW_WAIT` or :data:`OVERFLOW_OPEN`."""
    leak_warning_s: float | None = 600.0
    """Report a lease held longer than this (:class:`LeaseHeldLong`); ``None`` disables it."""
    early_close_s: float = 2.0
    """A connection closed by the upstream this soon after opening, unused, counts as a rejection."""

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {self.max_size}")
        if not 0 <= self.effective_min_idle <= self.max_size:
            raise ValueError(f"min_idle must be within [0, max_size={self.max_size}], got {self.min_idle}")
        if not 0 <= self.effective_ready_min <= self.max_size:
            raise ValueError(f"ready_min must be within [0, max_size={self.max_size}], got {self.ready_min}")
        if self.max_concurrent_pings < 1:
            raise ValueError(f"max_concurrent_pings must be >= 1, got {self.max_concurrent_pings}")
        if self.max_concurrent_connects < 1:
            raise ValueError(f"max_concurrent_connects must be >= 1, got {self.max_concurrent_connects}")
        positive = (
            "acquire_timeout_s",
            "connect_timeout_s",
            "max_idle_s",
            "max_lifetime_s",
            "ping_timeout_s",
            "check_timeout_s",
            "housekeeping_interval_s",
            "early_close_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.lifetime_jitter < 1:
            raise ValueError(f"lifetime_jitter must be within [0, 1), got {self.lifetime_jitter}")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("backoff_initial_s must be > 0 and <= backoff_max_s")
        for name in ("ping_interval_s", "leak_warning_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {self.overflow!r}")

    @property
    def effective_min_idle(self) -> int:
        return self.max_size if self.min_idle is None else self.min_idle

    @property
    def effective_ready_min(self) -> int:
        return self.effective_min_idle if self.ready_min is None else self.ready_min
