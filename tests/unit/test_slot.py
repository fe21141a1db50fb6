"""A pooled connection's explicit state: the transitions :meth:`Slots.move` allows, what it keeps in step."""

from __future__ import annotations

import pytest

from voxgate.pool import SlotState
from voxgate.pool.slot import Slot, Slots


def opened(slots: Slots[str], name: str, *, overflow: bool = False) -> Slot[str]:
    slot = slots.add(Slot(overflow=overflow))
    slot.opened(name, now=0.0, expires_at=100.0)
    return slot


def test_a_slot_has_no_connection_until_its_connect_returns() -> None:
    slot: Slot[str] = Slot()
    assert slot.state is SlotState.CONNECTING
    with pytest.raises(RuntimeError, match="no connection"):
        _ = slot.conn
    slot.opened("ws", now=5.0, expires_at=65.0, serial=1)
    assert (slot.conn, slot.created_at, slot.idle_since, slot.checked_at) == ("ws", 5.0, 5.0, 5.0)


def test_counts_follow_moves_and_keep_overflow_apart() -> None:
    slots: Slots[str] = Slots()
    pooled, extra = opened(slots, "a"), opened(slots, "b", overflow=True)
    assert slots.count(SlotState.CONNECTING) == 1 and slots.count(SlotState.CONNECTING, overflow=True) == 1
    slots.move(pooled, SlotState.IDLE)
    slots.move(extra, SlotState.LEASED)
    assert (slots.count(SlotState.IDLE), slots.count(SlotState.LEASED)) == (1, 0)
    assert slots.count(SlotState.LEASED, overflow=True) == 1
    assert slots.in_state(SlotState.LEASED) == [extra]
    slots.move(pooled, SlotState.CLOSED)
    assert slots.count(SlotState.IDLE) == 0 and slots.idle() == []
    assert slots.in_state(SlotState.CLOSED) == []  # a closed slot is no longer tracked


def test_idle_slots_are_kept_in_the_order_they_became_idle() -> None:
    slots: Slots[str] = Slots()
    first, second, third = (opened(slots, name) for name in "abc")
    for slot in (second, first, third):
        slots.move(slot, SlotState.IDLE)
    assert slots.oldest_idle() is second
    slots.move(first, SlotState.PINGING)
    assert slots.idle() == [second, third]
    slots.move(first, SlotState.IDLE)  # answered its ping: back at the end of the queue
    assert slots.idle() == [second, third, first]


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ((), SlotState.PINGING),  # a connection still connecting cannot be pinged
        ((SlotState.IDLE, SlotState.CLOSED), SlotState.IDLE),  # closed is final
        ((SlotState.LEASED,), SlotState.PINGING),  # a lent connection is not pinged
    ],
)
def test_a_transition_the_pool_never_makes_is_refused(
    path: tuple[SlotState, ...], refused: SlotState
) -> None:
    slots: Slots[str] = Slots()
    slot = opened(slots, "a")
    for state in path:
        slots.move(slot, state)
    with pytest.raises(RuntimeError, match=f"cannot go from {slot.state.value} to {refused.value}"):
        slots.move(slot, refused)
