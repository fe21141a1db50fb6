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


class ClosedAfterOpen(Exception):
    """The upstream closed a fresh connection right after its handshake, before any use.

    Typically a refusal the handshake did not express (quota, suspended account): a
    ``__cause__`` of :class:`ConnectFailed`, and a reason for the pool to stop hammering.
    """
