"""What the pool needs from a kind of connection: the one interface it talks to.

The pool is generic over the connection type ``C`` and knows nothing of WebSockets or
DashScope; a :class:`Connector` opens, closes and probes ``C`` for it, and says what a
failure means. :class:`voxgate.speech.connection.SynthesizerConnector` is the one for
the CosyVoice WebSocket.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

C = TypeVar("C")


class Connector(Protocol[C]):
    """Opens and closes connections of type ``C`` and tells the pool how they fare."""

    async def connect(self) -> C:
        """Open a new connection; raise on failure (the pool bounds the wait)."""
        ...

    async def close(self, conn: C) -> None:
        """Close ``conn``; errors are logged at debug level and otherwise ignored."""
        ...

    def is_open(self, conn: C) -> bool:
        """Whether ``conn`` may still be lent: False once the peer hung up or a task broke it."""
        ...

    async def ping(self, conn: C) -> None:
        """Resolve once the peer answered a ping; raise if it cannot (the pool bounds the wait)."""
        ...

    def is_fatal(self, error: Exception) -> bool:
        """Whether a connect failure is a rejection retrying cannot fix (credentials), not a transient one."""
        ...

    def unresponsive(self, conn: C) -> bool:
        """Whether ``conn`` went silent in a round trip it should have answered (no task-started,
        then no pong): the pool then checks its other idle connections at once."""
        ...

    def refusal(self, conn: C) -> str | None:
        """If the way the peer closed ``conn`` reads as a refusal (quota, account), why; else None."""
        ...
