"""A pooled connection's bookkeeping (:class:`Slot`) and the borrower's handle on it (:class:`Lease`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")


@dataclass(eq=False, slots=True)
class Slot(Generic[C]):
    conn: C
    created_at: float
    expires_at: float
    idle_since: float
    serial: int
    """1 for the first connection the pool opened, 2 for the next, ...; 0 for overflow ones."""
    uses: int = 0
    checked_at: float = 0.0
    """When it last proved alive (opened, returned clean, answered a ping)."""
    leased_at: float = 0.0
    held_long_reported: bool = False


@dataclass(eq=False, slots=True)
class Lease(Generic[C]):
    """A borrowed connection. Call :meth:`mark_reusable` only once it is clean again."""

    conn: C
    reused: bool
    wait_s: float
    age_s: float
    _slot: Slot[C] = field(repr=False)
    reusable: bool = False

    def mark_reusable(self) -> None:
        """Declare the connection clean (its task ended normally): it may be lent again."""
        self.reusable = True
