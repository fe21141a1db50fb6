"""A sans-I/O parser for DashScope's server-sent events (docs/protocol.md#sse-stream).

Feed it bytes as they arrive (:meth:`SseParser.feed`), in chunks of any size; it returns the
events those bytes completed. It follows the SSE rules (LF, CRLF or CR line ends; a blank
line ends an event; ``:`` starts a comment; one optional space after the colon; several
``data:`` lines joined with newlines) and keeps what DashScope adds: the ``:HTTP_STATUS/429``
comment and the SDK's non-standard ``status:`` line become :attr:`SseEvent.status`.
Call :meth:`SseParser.close` at end of stream to get an event left without its blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HTTP_STATUS_COMMENT = re.compile(r"^HTTP_STATUS/(\d{3})$")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event. ``event`` is ``"message"`` when the server named none (the SSE default)."""

    data: str
    event: str = "message"
    id: str | None = None
    status: int | None = None
    comments: tuple[str, ...] = field(default=())


class SseParser:
    """Bytes in, :class:`SseEvent` out. One parser per response body."""

    def __init__(self) -> None:
        self._buffer = b""
        self._last_was_cr = False
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._status: int | None = None
        self._comments: list[str] = []
        self._has_fields = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Add ``chunk``; return the events it completed, in order."""
        if self._last_was_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two reads
        self._last_was_cr = False
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            match = re.search(rb"\r\n|\r|\n", self._buffer)
            if match is None:
                break
            if match.group() == b"\r" and match.end() == len(self._buffer):
                # A lone CR at the end may be half of a CRLF: take the line, drop a leading LF next time.
                self._last_was_cr = True
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> SseEvent | None:
        """End of stream: an event whose terminating blank line never came, if any."""
        if self._buffer:
            self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        return self._dispatch()

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if not name:  # a comment
            self._comments.append(value)
            status = _HTTP_STATUS_COMMENT.match(value)
            if status:
                self._status = int(status.group(1))
            self._has_fields = True
            return None
        self._has_fields = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "status" and value.strip().isdigit():
            self._status = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._has_fields:
            return None
        event = None
        if self._data or self._event:
            event = SseEvent(
                data="\n".join(self._data),
                event=self._event or "message",
                id=self._id,
                status=self._status,
                comments=tuple(self._comments),
            )
        self._reset()
        return event
