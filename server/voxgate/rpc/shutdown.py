"""Calls in flight, so that stopping at once ends each one with a clear status.

A drain gives running calls the grace period. When the operator cuts it short (a second
SIGINT/SIGTERM), gRPC would cancel every call with a bare ``UNAVAILABLE: Cancelling all
calls``; :class:`InFlight` cancels the handlers first and answers each caller
``UNAVAILABLE: server shutting down now`` instead. The handlers clean up as on any cancel
(leases returned, upstream tasks ended), since the cancel reaches them the usual way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.descriptor import ServiceDescriptor

S = TypeVar("S")

SHUTTING_DOWN_NOW = "server shutting down now; retry on another instance"


class InFlight:
    """Registers the handler task of each call of the servicers it :meth:`track`\\ s."""

    def __init__(self) -> None:
        self._calls: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._calls)

    def cutting_current(self) -> bool:
        """True inside a call that :meth:`cancel_all` is cutting: its handler may answer the
        cancel itself (with what it delivered so far) instead of leaving it to :meth:`run`."""
        return asyncio.current_task() in self._cut

    def track(self, servicer: S, service: ServiceDescriptor) -> S:
        """A stand-in for ``servicer`` whose RPC methods (as ``service`` names them) are tracked."""
        return cast(S, _Tracked(servicer, frozenset(m.name for m in service.methods), self))

    async def cancel_all(self, timeout_s: float) -> None:
        """Cancel every tracked call, each ending ``UNAVAILABLE``; wait up to ``timeout_s`` for them."""
        calls = set(self._calls)
        self._cut |= calls
        for task in calls:
            task.cancel()
        if calls:
            await asyncio.wait(calls, timeout=timeout_s)

    async def run(self, handler: Callable[[Any, Any], Awaitable[Any]], request: Any, context: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await handler(request, context)
        except asyncio.CancelledError:
            if task not in self._cut:
                raise  # the caller went away, or gRPC itself cancels: nothing to answer
            task.uncancel()
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN_NOW)
        finally:
            self._calls.discard(task)
            self._cut.discard(task)


class _Tracked:
    def __init__(self, servicer: object, methods: frozenset[str], inflight: InFlight) -> None:
        self._servicer = servicer
        self._methods = methods
        self._inflight = inflight

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._servicer, name)
        if name not in self._methods:
            return attribute
        inflight = self._inflight

        # A plain coroutine function: gRPC inspects handlers to choose how to call them.
        async def handler(request: Any, context: Any) -> Any:
            return await inflight.run(attribute, request, context)

        return handler
