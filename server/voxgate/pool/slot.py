"""Each connection's record (:class:`Slot`), its explicit state, and the borrower's handle (:class:`Lease`).

A slot's :class:`SlotState` changes in one place, :meth:`Slots.move`, which checks the
transition and keeps the counts and the idle queue in step; no state is inferred from
which container a slot sits in.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")


class SlotState(enum.Enum):
    CONNECTING = "connecting"
    """Its connect is in flight; it has no connection yet."""
    IDLE = "idle"
    """Open and parked in the idle queue, lendable."""
    LEASED = "leased"
    """Lent to a borrower."""
    PINGING = "pinging"
    """Out of the idle queue for a ping: not lendable until the pong."""
    CLOSED = "closed"
    """Evicted, or its connect failed: never lent again (its socket closes in the background)."""


_S = SlotState
_TRANSITIONS: dict[SlotState, frozenset[SlotState]] = {
    _S.CONNECTING: frozenset({_S.IDLE, _S.LEASED, _S.CLOSED}),
    _S.IDLE: frozenset({_S.LEASED, _S.PINGING, _S.CLOSED}),
    # LEASED -> LEASED: given back clean and handed straight to the oldest waiter.
    _S.LEASED: frozenset({_S.IDLE, _S.LEASED, _S.CLOSED}),
    _S.PINGING: frozenset({_S.IDLE, _S.LEASED, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


@dataclass(eq=False, slots=True)
class Slot(Generic[C]):
    """One connection of the pool (or one overflow connection), from its connect to its close."""

    overflow: bool = False
    """A temporary connection opened past ``max_size`` for one lease, closed after it."""
    state: SlotState = SlotState.CONNECTING
    """Changed only by :meth:`Slots.move`."""
    _conn: C | None = None
    serial: int = 0
    """Order among the pool's own connections: 1 for the first it opened, 2 for the next, ...
    (0 until opened; overflow connections are not numbered)."""
    created_at: float = 0.0
    expires_at: float = math.inf
    idle_since: float = 0.0
    uses: int = 0
    checked_at: float = 0.0
    """When it last proved alive (opened, returned clean, answered a ping)."""
    leased_at: float = 0.0
    held_long_reported: bool = False

    @property
    def conn(self) -> C:
        if self._conn is None:
            raise RuntimeError(f"slot {self.state.value} has no connection")
        return self._conn

    def opened(self, conn: C, *, now: float, expires_at: float, serial: int = 0) -> None:
        """Record the connection its connect returned."""
        self._conn = conn
        self.serial = serial
        self.created_at = self.idle_since = self.checked_at = now
        self.expires_at = expires_at


class Slots(Generic[C]):
    """Every live slot of one pool with its state; the idle ones also in lending (FIFO) order."""

    def __init__(self) -> None:
        self._live: set[Slot[C]] = set()
        self._idle: deque[Slot[C]] = deque()
        self._counts: Counter[tuple[bool, SlotState]] = Counter()

    def add(self, slot: Slot[C]) -> Slot[C]:
        """Track a new slot (in its initial state, ``CONNECTING``)."""
        self._live.add(slot)
        self._counts[slot.overflow, slot.state] += 1
        return slot

    def move(self, slot: Slot[C], state: SlotState) -> None:
        """The one place a slot changes state."""
        if state not in _TRANSITIONS[slot.state]:
            raise RuntimeError(f"pool slot cannot go from {slot.state.value} to {state.value}")
        if slot.state is SlotState.IDLE:
            self._idle.remove(slot)
        self._counts[slot.overflow, slot.state] -= 1
        slot.state = state
        if state is SlotState.CLOSED:
            self._live.discard(slot)
            return
        self._counts[slot.overflow, state] += 1
        if state is SlotState.IDLE:
            self._idle.append(slot)

    def count(self, state: SlotState, *, overflow: bool = False) -> int:
        return self._counts[overflow, state]

    def oldest_idle(self) -> Slot[C] | None:
        return self._idle[0] if self._idle else None

    def idle(self) -> list[Slot[C]]:
        """The idle slots, oldest first (a copy: safe to move them while iterating)."""
        return list(self._idle)

    def in_state(self, state: SlotState) -> list[Slot[C]]:
        """Every live slot in ``state``, pooled and overflow (a copy)."""
        return [slot for slot in self._live if slot.state is state]


@dataclass(eq=False, slots=True)
class Lease(Generic[C]):
    """A borrowed connection. Call :meth:`mark_reusable` only once it is clean again."""

    conn: C
    reused: bool
    wait_s: float
    age_s: float
    _slot: Slot[C] = field(repr=False)
    reusable: bool = False
    _returned: bool = field(default=False, repr=False)

    def mark_reusable(self) -> None:
        """Declare the connection clean (its task ended normally): it may be lent again."""
        self.reusable = True
