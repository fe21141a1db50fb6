"""The errors the pool raises to a borrower."""

from __future__ import annotations


class PoolError(Exception):
    """Base of the errors :meth:`Pool.acquire` raises."""


class PoolClosed(PoolError):
    """The pool is draining or closed: it lends nothing more."""


class PoolTimeout(PoolError):
    """No connection became free within the acquire timeout."""


class ConnectFailed(PoolError):
    """Opening an upstream connection failed; ``__cause__`` holds the reason."""


class NotConnected(ConnectFailed):
    """No usable upstream connection and none opened in time: nothing reached the upstream yet.

    Raised at once while the latest evidence is an outage (a failed connect, connections that
    stopped answering) and another caller's connect is already trying, or when the one connect
    this caller drove failed, or when the wait ended with the pool not busy but unconnected. The
    request was never sent upstream, so retrying it is safe (docs/operations.md#detection-and-recovery).
    """


class Unresponsive(Exception):
    """Open connections stopped answering (a ping or a task start went unanswered): the
    ``__cause__`` of :class:`NotConnected` when the last of them failed its check."""


class ClosedAfterOpen(Exception):
    """The upstream closed a fresh connection right after its handshake, before any use.

    Typically a refusal the handshake did not express (quota, suspended account): a
    ``__cause__`` of :class:`ConnectFailed`, and a reason for the pool to stop hammering.
    """
