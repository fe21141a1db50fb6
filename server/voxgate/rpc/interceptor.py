"""A server span and request metrics for every voxgate RPC, continuing the caller's trace.

:class:`RpcInterceptor` extracts the W3C ``traceparent`` (and ``baggage``; whatever
``OTEL_PROPAGATORS`` names) from the call's metadata, runs the handler inside a SERVER
span named ``{service}/{method}`` with the ``rpc.*`` attributes, and records the final
status code in the span, the request counter and the duration histogram.

Why not ``opentelemetry-instrumentation-grpc``: its grpc.aio interceptor iterates a
server-streaming handler with ``async for``, which breaks handlers that write with
``context.write()`` (ours: see :mod:`voxgate.speech.servicer`), it proxies the context
object on every call, and it records no metrics.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from opentelemetry import propagate, trace

from voxgate.observability import names
from voxgate.observability.telemetry import Telemetry
from voxgate.rpc.callers import current_caller

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only


@dataclass(frozen=True, slots=True)
class _Rpc:
    """What is known of a call before it runs."""

    service: str
    method: str

    @property
    def span_name(self) -> str:
        return f"{self.service}/{self.method}"

    def attributes(self, status: grpc.StatusCode) -> dict[str, str | int]:
        return {
            names.RPC_SYSTEM: "grpc",
            names.RPC_SERVICE: self.service,
            names.RPC_METHOD: self.method,
            names.RPC_GRPC_STATUS_CODE: status.value[0],
        }


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """Install with ``grpc.aio.server(interceptors=[RpcInterceptor(telemetry)])``.

    Only methods under ``prefix`` are observed (health checks and reflection are not
    worth a span each); client-streaming methods pass through untouched (voxgate has none;
    bidirectional ones are observed like server-streaming ones).
    """

    def __init__(self, telemetry: Telemetry, *, prefix: str = "/voxgate.") -> None:
        self._tracer = telemetry.tracer
        self._prefix = prefix
        self._requests = telemetry.meter.create_counter(
            names.METRIC_REQUESTS, unit="{request}", description="RPCs handled, by method and final status"
        )
        self._duration = telemetry.meter.create_histogram(
            names.METRIC_REQUEST_DURATION, unit="ms", description="time from an RPC's arrival to its status"
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # "/package.Service/Method"
        if handler is None or not method.startswith(self._prefix):
            return handler
        service, _, name = method[1:].partition("/")
        rpc = _Rpc(service, name)
        if handler.request_streaming:
            if not handler.response_streaming or handler.stream_stream is None:
                return handler  # client streaming: voxgate has none
            return grpc.stream_stream_rpc_method_handler(  # SynthesizeStream
                self._wrap_stream(rpc, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.response_streaming and handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(rpc, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._wrap_unary(rpc, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_unary(self, rpc: _Rpc, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def unary(request: object, context: Context) -> object:
            with self._observe(rpc, context):
                return await behavior(request, context)

        return unary

    def _wrap_stream(self, rpc: _Rpc, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def generator(request: object, context: Context) -> AsyncIterator[object]:
                with self._observe(rpc, context):
                    async for response in behavior(request, context):
                        yield response

            return generator

        async def writer(request: object, context: Context) -> None:
            # A handler that writes with context.write() and returns None.
            with self._observe(rpc, context):
                await behavior(request, context)

        return writer

    @contextmanager
    def _observe(self, rpc: _Rpc, context: Context) -> Iterator[None]:
        started = time.perf_counter()
        parent = propagate.extract(_text_metadata(context.invocation_metadata()))
        span = self._tracer.start_span(rpc.span_name, context=parent, kind=trace.SpanKind.SERVER)
        if span.is_recording():
            span.set_attributes(_peer_attributes(context.peer()))
        error: BaseException | None = None
        try:
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            status = _final_status(context, error)
            attributes = rpc.attributes(status)
            if span.is_recording():
                span.set_attributes(attributes)
                if status is not grpc.StatusCode.OK:
                    span.set_status(trace.StatusCode.ERROR, _details(context) or status.name)
                if error is not None and not isinstance(error, grpc.aio.AbortError | asyncio.CancelledError):
                    span.add_event(
                        names.EVENT_EXCEPTION,
                        {names.EXCEPTION_TYPE: type(error).__qualname__, names.EXCEPTION_MESSAGE: str(error)},
                    )
            span.end()
            del attributes[names.RPC_SYSTEM]
            caller = current_caller.get()  # set by voxgate.rpc.auth in this call's task
            if caller is not None:
                attributes[names.CALLER] = caller
            self._requests.add(1, attributes)
            self._duration.record((time.perf_counter() - started) * 1000, attributes)


def _final_status(context: Context, error: BaseException | None) -> grpc.StatusCode:
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an exception that escaped the handler


def _details(context: Context) -> str:
    details: str | bytes | None = context.details()
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return details or ""


def _text_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The call's ASCII metadata as a propagation carrier (binary ``-bin`` entries skipped)."""
    return {key: value for key, value in metadata or () if isinstance(value, str)}


def _peer_attributes(peer: str) -> dict[str, str | int]:
    """``network.peer.*`` from grpc's peer string: ``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:...``."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return {}
    host, _, port = rest.rpartition(":")
    attributes: dict[str, str | int] = {names.NETWORK_PEER_ADDRESS: host.strip("[]")}
    if port.isdigit():
        attributes[names.NETWORK_PEER_PORT] = int(port)
    return attributes
