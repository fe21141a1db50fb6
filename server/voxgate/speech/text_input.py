"""The text of one SynthesizeStream (or Speak) call: pieces as they arrive, limits, replay.

:class:`TextInput` is filled by whoever reads the caller (the request stream, a model's
deltas) and read by the upstream attempt through a :class:`TextReader`. Every attempt
gets a fresh reader from the first piece, so a retry before any audio replays all the
text received so far on a new connection. A reader coalesces only what is already
queued: a piece that arrives while the previous one is being sent goes with the next
continue-task; nothing waits for more text.

The upstream fails a task that receives no client frame for 23 s and has no keep-alive
(docs/protocol.md#timing-limits): the only frame the SDK sends without text is a
``flush``, which makes the service speak a half-written sentence. So :class:`TextInput`
fails itself after ``idle_timeout_s`` (below 23 s) without a piece, before the upstream
does, with a status that says why.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from voxgate.rpc.errors import Failure
from voxgate.speech.protocol import MAX_TEXT_CHARS_PER_CONTINUE, MAX_TEXT_CHARS_PER_TASK, weighted_length


class InputRejected(Exception):
    """The caller's text broke a limit or the stream's rules; :attr:`failure` is how the call ends."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(code, message)


def input_failure(exc: BaseException) -> Failure | None:
    """The feature classifier of :class:`InputRejected` (never retried: the input is at fault)."""
    return exc.failure if isinstance(exc, InputRejected) else None


class TextInput:
    """Pieces of text received so far; ``close()`` when the caller is done."""

    def __init__(
        self, *, idle_timeout_s: float, max_pieces: int, idle_hint: str, idle_from_first_piece: bool = False
    ) -> None:
        """``idle_from_first_piece``: the idle limit starts with the first piece, not now (Speak
        starts its upstream task only then)."""
        self._idle_timeout_s = idle_timeout_s
        self._max_pieces = max_pieces
        self._idle_hint = idle_hint
        self.pieces: list[str] = []
        self.chars = 0
        """Weighted characters received (CJK count 2), as the upstream bills them."""
        self.received = 0
        """Pieces received, empty ones included."""
        self.first_piece_at: float | None = None
        """``time.perf_counter()`` when the first non-empty piece arrived."""
        self.closed = False
        self.error: InputRejected | None = None
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._idle_timer: asyncio.TimerHandle | None = None
        if not idle_from_first_piece:
            self._arm_idle()

    def add(self, piece: str) -> None:
        """Append one piece. Raises :class:`InputRejected` (and fails the input) past a limit."""
        if self.closed or self.error is not None:
            return
        self.received += 1
        if self.received > self._max_pieces:
            self.fail(
                InputRejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"text: more than {self._max_pieces} pieces in one stream (VOXGATE_STREAM_MAX_PIECES);"
                    " send longer pieces",
                )
            )
            return
        if not piece:
            if self._idle_timer is not None:
                self._arm_idle()
            return
        self._arm_idle()
        length = weighted_length(piece)
        if length > MAX_TEXT_CHARS_PER_CONTINUE:
            self.fail(
                InputRejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"text: a piece of {length} characters exceeds the limit of"
                    f" {MAX_TEXT_CHARS_PER_CONTINUE} per piece (CJK ideographs count 2)",
                )
            )
            return
        if self.chars + length > MAX_TEXT_CHARS_PER_TASK:
            self.fail(
                InputRejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"text: the stream exceeds the limit of {MAX_TEXT_CHARS_PER_TASK} characters in all"
                    " (CJK ideographs count 2)",
                )
            )
            return
        if self.first_piece_at is None:
            self.first_piece_at = time.perf_counter()
        self.chars += length
        self.pieces.append(piece)
        self._changed.set()

    def close(self, *, allow_empty: bool = False) -> None:
        """The caller sent its last piece. Without any text that is an error, unless ``allow_empty``
        (a model may answer nothing: Speak then speaks nothing)."""
        self._disarm()
        if self.error is None and not allow_empty and not "".join(self.pieces).strip():
            self.fail(InputRejected(grpc.StatusCode.INVALID_ARGUMENT, "text: the stream sent no text"))
            return
        self.closed = True
        self._changed.set()

    def fail(self, error: InputRejected) -> None:
        """End the input with ``error``: every reader raises it."""
        self._disarm()
        if self.error is None:
            self.error = error
        self._changed.set()

    def reader(self) -> TextReader:
        """A reader from the first piece (one per upstream attempt)."""
        return TextReader(self)

    async def changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _arm_idle(self) -> None:
        self._disarm()
        self._idle_timer = self._loop.call_later(self._idle_timeout_s, self._on_idle)

    def _disarm(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle(self) -> None:
        self._idle_timer = None
        self.fail(
            InputRejected(
                grpc.StatusCode.OUT_OF_RANGE,
                f"text: no piece for {self._idle_timeout_s:g}s ({self._idle_hint}); the upstream fails a"
                " synthesis task after 23 s without text and has no keep-alive: send text sooner,"
                " or close the request stream to finish",
            )
        )


class TextReader:
    """One attempt's view of a :class:`TextInput`, from its first piece."""

    def __init__(self, source: TextInput) -> None:
        self._source = source
        self._next = 0

    async def next_batch(self) -> str | None:
        """The pieces queued since the last call, joined (at most one continue-task's worth);
        waits for one if none is queued. None once the input is closed and all was read.
        Raises the input's :class:`InputRejected`."""
        source = self._source
        while True:
            if source.error is not None:
                raise source.error
            if self._next < len(source.pieces):
                return self._take()
            if source.closed:
                return None
            await source.changed()

    def _take(self) -> str:
        pieces = self._source.pieces
        batch = [pieces[self._next]]
        length = weighted_length(batch[0])
        self._next += 1
        while self._next < len(pieces):
            more = weighted_length(pieces[self._next])
            if length + more > MAX_TEXT_CHARS_PER_CONTINUE:
                break
            batch.append(pieces[self._next])
            length += more
            self._next += 1
        return "".join(batch)
