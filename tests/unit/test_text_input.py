"""TextInput: pieces in, batches out, limits, replay from the first piece."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from voxgate.speech.protocol import MAX_TEXT_CHARS_PER_CONTINUE
from voxgate.speech.text_input import InputRejected, TextInput


def make(idle_timeout_s: float = 60.0, max_pieces: int = 100) -> TextInput:
    return TextInput(idle_timeout_s=idle_timeout_s, max_pieces=max_pieces, idle_hint="TEST_IDLE")


async def test_queued_pieces_are_coalesced_and_later_ones_wait() -> None:
    text = make()
    reader = text.reader()
    text.add("Hello ")
    text.add("there. ")
    assert await reader.next_batch() == "Hello there. "
    pending = asyncio.ensure_future(reader.next_batch())
    await asyncio.sleep(0)
    assert not pending.done()  # nothing queued: the reader waits for the caller
    text.add("Again.")
    assert await pending == "Again."
    text.close()
    assert await reader.next_batch() is None


async def test_a_new_reader_replays_everything_received() -> None:
    text = make()
    first = text.reader()
    text.add("One. ")
    assert await first.next_batch() == "One. "
    text.add("Two. ")
    text.close()
    assert await text.reader().next_batch() == "One. Two. "


async def test_batches_never_exceed_one_continue_task() -> None:
    text = make()
    piece = "a" * (MAX_TEXT_CHARS_PER_CONTINUE // 2 + 1)
    text.add(piece)
    text.add(piece)
    text.close()
    reader = text.reader()
    assert await reader.next_batch() == piece
    assert await reader.next_batch() == piece


async def test_too_many_pieces_fails_every_reader() -> None:
    text = make(max_pieces=2)
    for piece in ("a", "b", "c"):
        text.add(piece)
    with pytest.raises(InputRejected) as info:
        await text.reader().next_batch()
    assert info.value.failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 2 pieces" in str(info.value)


async def test_an_oversized_piece_is_rejected_naming_the_limit() -> None:
    text = make()
    text.add("字" * (MAX_TEXT_CHARS_PER_CONTINUE // 2 + 1))  # CJK counts 2
    with pytest.raises(InputRejected, match="per piece"):
        await text.reader().next_batch()


async def test_an_idle_input_fails_out_of_range() -> None:
    text = make(idle_timeout_s=0.05)
    text.add("Hello ")
    reader = text.reader()
    assert await reader.next_batch() == "Hello "
    with pytest.raises(InputRejected) as info:
        await asyncio.wait_for(reader.next_batch(), timeout=5)
    assert info.value.failure.code == grpc.StatusCode.OUT_OF_RANGE
    assert "TEST_IDLE" in str(info.value)


async def test_a_closed_input_is_never_idle() -> None:
    text = make(idle_timeout_s=0.01)
    text.add("Done.")
    text.close()
    await asyncio.sleep(0.05)
    reader = text.reader()
    assert await reader.next_batch() == "Done."
    assert await reader.next_batch() is None


async def test_closing_without_text_is_invalid_argument() -> None:
    text = make()
    text.add("  ")
    text.close()
    with pytest.raises(InputRejected, match="sent no text"):
        await text.reader().next_batch()
