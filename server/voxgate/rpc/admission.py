"""Admission: an in-flight limit voxgate enforces itself, a clear refusal past it, and the
overload counters (refused by reason, stalled writes, salvages, rate-limited task starts).

Past ``max_concurrent_rpcs`` calls in flight, a new voxgate call ends at once
``RESOURCE_EXHAUSTED`` with a message saying so and ``voxgate-refused: max_concurrent_rpcs`` in
its trailing metadata, before any validation or upstream work. gRPC core's own limits are set
high enough (``server_options``) that it never drops a call itself with a bare ``CANCELLED``:
every call reaches this interceptor and gets an answer.

The same interceptor answers a request body that does not decode ``INVALID_ARGUMENT`` (gRPC
would answer ``UNKNOWN`` and log an ERROR with a traceback per such request).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import trace

from voxgate.observability import names
from voxgate.rpc.errors import MD_REFUSED

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

REFUSED_MAX_CONCURRENT = "max_concurrent_rpcs"
REFUSED_POOL_BUSY = "pool_busy"
REFUSED_TASK_START_RATE = "task_start_rate"
REFUSED_UNDECODABLE = "undecodable"
REFUSAL_LOG_INTERVAL_S = 10.0
"""At most one log line per reason this often: a burst of refusals must not become a burst of logs."""

PENDING_REQUESTS_MIN = 10_000
PENDING_REQUESTS_PER_RPC = 8
"""gRPC core holds calls that arrived but were not yet taken by the server's accept loop
("pending requests"; grpc.aio takes one at a time). Past ``grpc.server.max_pending_requests``
(default 1000) it cancels new ones at random with a bare CANCELLED, past the hard limit (3000)
all of them: 2,000 calls opened at once lost ~200 that way. Both are raised (to this many times
the in-flight limit, at least :data:`PENDING_REQUESTS_MIN`), so a burst waits a moment in core,
a few KB per call, and then each call gets this interceptor's clear answer."""
UNREQUESTED_TIME_MAX_S = 3600


@dataclass(slots=True)
class Overload:
    """Counters of everything refused or cut for overload and abuse; totals since start.

    Shared by the interceptor, the servicers, the salvager and the task-start rate limiter;
    read by the stats service and the metrics.
    """

    max_concurrent_rpcs: int = 0
    in_flight: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    writes_stalled: int = 0
    salvaged: int = 0
    salvage_closed: int = 0
    salvages_in_flight: int = 0
    rate_limited_waits: int = 0
    listeners: list[Callable[[str, str], None]] = field(default_factory=list)
    """Called with (kind, reason) for each count: the metrics' hook."""
    _last_logged: dict[str, float] = field(default_factory=dict)
    _unlogged: dict[str, int] = field(default_factory=dict)

    def refuse(self, reason: str, detail: str) -> None:
        """Count one refused call; log it, at most once per reason per interval."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self._notify("refused", reason)
        now = time.monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL_S:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._last_logged[reason] = now
        more = self._unlogged.pop(reason, 0)
        since = f" (and {more} more since the last line)" if more else ""
        log.warning("refused a call (%s): %s%s", reason, detail, since)

    def count(self, kind: str, reason: str = "") -> None:
        """Count one ``kind`` event: writes_stalled, salvaged, salvage_closed or rate_limited_waits."""
        setattr(self, kind, getattr(self, kind) + 1)
        self._notify(kind, reason)

    def _notify(self, kind: str, reason: str) -> None:
        # On the call's span when counted in its handler (a salvage's outcome comes later: none).
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(names.OVERLOAD_PREFIX + kind, reason or True)
        for listener in self.listeners:
            try:
                listener(kind, reason)
            except Exception:
                log.exception("overload listener failed")


def overload_metrics(meter: Any, overload: Overload) -> None:
    """Export every count of ``overload`` as the ``voxgate.server.overload`` counter."""
    counter = meter.create_counter(
        names.METRIC_OVERLOAD,
        unit="{call}",
        description="calls refused or cut for overload, by kind and reason",
    )

    def record(kind: str, reason: str) -> None:
        counter.add(1, {names.OVERLOAD_KIND: kind, names.OVERLOAD_REASON: reason})

    overload.listeners.append(record)


def server_options(max_concurrent_rpcs: int) -> list[tuple[str, int]]:
    """gRPC core options that leave the refusing to :class:`AdmissionInterceptor` (see
    :data:`PENDING_REQUESTS_PER_RPC`)."""
    pending = max(PENDING_REQUESTS_MIN, PENDING_REQUESTS_PER_RPC * max_concurrent_rpcs)
    return [
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", 2 * pending),
        # Core also cancels, bare, a call left pending for 30 s; the caller's deadline is the
        # clear limit on that wait (DEADLINE_EXCEEDED), so core's is pushed out of the way.
        ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_TIME_MAX_S),
    ]


class _Undecodable:
    """Stands for a request body that did not decode; the handler answers INVALID_ARGUMENT."""

    __slots__ = ("error", "type_name")

    def __init__(self, type_name: str, error: Exception) -> None:
        self.type_name = type_name
        self.error = error


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Install with ``grpc.aio.server(interceptors=[..., AdmissionInterceptor(overload)])``.

    Only methods under ``prefix`` count (health checks and reflection are never refused), and
    not those of the ``exempt`` services (the stats an operator reads during an overload).
    """

    def __init__(
        self, overload: Overload, *, prefix: str = "/voxgate.", exempt: tuple[str, ...] = ()
    ) -> None:
        self._overload = overload
        self._prefix = prefix
        self._exempt = tuple(f"/{service}/" for service in exempt)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self._prefix) or method.startswith(self._exempt):
            return handler
        if handler.request_streaming:
            behavior = handler.stream_stream if handler.response_streaming else handler.stream_unary
            make = (
                grpc.stream_stream_rpc_method_handler
                if handler.response_streaming
                else grpc.stream_unary_rpc_method_handler
            )
            deserializer = handler.request_deserializer
        else:
            behavior = handler.unary_stream if handler.response_streaming else handler.unary_unary
            make = (
                grpc.unary_stream_rpc_method_handler
                if handler.response_streaming
                else grpc.unary_unary_rpc_method_handler
            )
            deserializer = _tolerant(handler.request_deserializer)
        if behavior is None:
            return handler
        return make(
            self._wrap(behavior),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        admit, leave = self._admit, self._leave
        if inspect.isasyncgenfunction(behavior):

            async def generator(request: Any, context: Context) -> AsyncIterator[object]:
                await admit(request, context)
                try:
                    async for response in behavior(request, context):
                        yield response
                finally:
                    leave()

            return generator

        async def call(request: Any, context: Context) -> Any:
            await admit(request, context)
            try:
                return await behavior(request, context)
            finally:
                leave()

        return call

    async def _admit(self, request: Any, context: Context) -> None:
        overload = self._overload
        limit = overload.max_concurrent_rpcs
        if limit and overload.in_flight >= limit:
            detail = (
                f"{overload.in_flight} calls in flight, the limit is {limit} (VOXGATE_MAX_CONCURRENT_RPCS)"
            )
            overload.refuse(REFUSED_MAX_CONCURRENT, detail)
            context.set_trailing_metadata(((MD_REFUSED, REFUSED_MAX_CONCURRENT),))
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"voxgate is at its limit of {limit} concurrent calls;"
                " retry with backoff or on another instance",
            )
        if isinstance(request, _Undecodable):
            overload.refuse(REFUSED_UNDECODABLE, f"a {request.type_name} did not decode: {request.error}")
            context.set_trailing_metadata(((MD_REFUSED, REFUSED_UNDECODABLE),))
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is not a valid {request.type_name} message",
            )
        overload.in_flight += 1

    def _leave(self) -> None:
        self._overload.in_flight -= 1


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    type_name = getattr(owner, "__name__", "request")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, TypeError) as exc:
            return _Undecodable(type_name, exc)

    return deserialize
