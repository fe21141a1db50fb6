"""The warm pool: lends pre-connected upstream connections, generic over the connection type.

Import from here (``from voxgate.pool import Pool, PoolConfig``); the modules inside are its rooms.
"""

from voxgate.pool.base import loop_clock
from voxgate.pool.breaker import Breaker
from voxgate.pool.config import OVERFLOW_OPEN, OVERFLOW_POLICIES, OVERFLOW_WAIT, PoolConfig
from voxgate.pool.connector import Connector
from voxgate.pool.errors import (
    ClosedAfterOpen,
    ConnectFailed,
    NotConnected,
    PoolClosed,
    PoolError,
    PoolTimeout,
    Unresponsive,
)
from voxgate.pool.events import (
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
    log_event,
)
from voxgate.pool.pool import Pool
from voxgate.pool.slot import Lease, SlotState

__all__ = [
    "EVICT_CLOSED",
    "EVICT_DISCARDED",
    "EVICT_IDLE",
    "EVICT_LIFETIME",
    "EVICT_OVERFLOW",
    "EVICT_PING",
    "EVICT_REJECTED",
    "EVICT_SHUTDOWN",
    "EVICT_SURPLUS",
    "EVICT_UNRESPONSIVE",
    "OVERFLOW_OPEN",
    "OVERFLOW_POLICIES",
    "OVERFLOW_WAIT",
    "Breaker",
    "ClosedAfterOpen",
    "ConnectFailed",
    "ConnectionEvicted",
    "ConnectionFailed",
    "ConnectionOpened",
    "Connector",
    "HealthChanged",
    "Lease",
    "LeaseGranted",
    "LeaseHeldLong",
    "LeaseRefused",
    "NotConnected",
    "Pool",
    "PoolClosed",
    "PoolConfig",
    "PoolError",
    "PoolEvent",
    "PoolListener",
    "PoolStats",
    "PoolTimeout",
    "SlotState",
    "Unresponsive",
    "log_event",
    "loop_clock",
]
