"""Who is calling: caller keys and client certificates, checked before any handler runs; quotas.

:class:`AuthInterceptor` is installed only when caller authentication is configured (a
callers file, mutual TLS, or both; docs/security.md). For every method but the health
service it finds the caller:

- ``authorization: Bearer <key>`` metadata: the callers-file entry whose ``key_sha256``
  matches (voxgate.rpc.callers); an unknown key is ``UNAUTHENTICATED``, even over mTLS;
- else, with mutual TLS, the verified client certificate's subject common name is the caller
  name, with the quotas of the callers-file entry of that name if there is one;
- else ``UNAUTHENTICATED``, saying which metadata to send.

Calls of the metered services (speech, generation) are then admitted by the per-caller
:class:`~voxgate.rpc.quotas.Ledger`: over a quota is ``RESOURCE_EXHAUSTED`` with the quota's
name in ``voxgate-quota`` and, when waiting helps, whole seconds in ``retry-after`` trailing
metadata. The caller's name goes on the call's span (``voxgate.caller``), into
:data:`~voxgate.rpc.callers.current_caller` for metrics and JSON logs, never the key.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace

from voxgate.observability import names
from voxgate.rpc.callers import UNLIMITED, Caller, CallersFile, current_caller
from voxgate.rpc.quotas import Ledger, QuotaExceeded
from voxgate.rpc.tls import peer_common_name

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Any  # grpc.RpcMethodHandler, generic in the stubs only
HEALTH_PREFIX = "/grpc.health.v1.Health/"
QUOTA_METADATA = "voxgate-quota"
RETRY_AFTER_METADATA = "retry-after"
ASK_FOR_KEY = "send metadata 'authorization: Bearer <caller key>' (docs/security.md)"


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call costs against the rate quotas."""

    characters: int = 0
    generation: bool = False


Pricing = Callable[[Any], Charge]
"""The charge of a call from its request message."""


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call but health checks; admits metered ones by quota. See the module doc."""

    def __init__(
        self,
        *,
        callers: CallersFile | None,
        mutual_tls: bool,
        ledger: Ledger,
        metered_services: Sequence[str],
        pricing: Mapping[str, Pricing],
    ) -> None:
        self._callers = callers
        self._mutual_tls = mutual_tls
        self._ledger = ledger
        self._metered = tuple(f"/{service}/" for service in metered_services)
        self._pricing = dict(pricing)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler  # health stays open: probes carry no credentials
        build = {
            (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
            (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
            (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
            (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
        }
        make, behavior = build[(handler.request_streaming, handler.response_streaming)]
        return make(
            self.wrap(method, behavior, request_streaming=handler.request_streaming),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def identify(self, context: Context) -> Caller:
        """The calling :class:`Caller`; raises :class:`Refused` (``UNAUTHENTICATED``)."""
        key = _bearer(context.invocation_metadata())
        if key is not None and self._callers is not None:
            caller = self._callers.authenticate(key)
            if caller is None:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, "unknown caller key")
            return caller
        if self._mutual_tls:
            name = peer_common_name(context.auth_context())
            if name is None:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, "the client certificate has no common name")
            known = self._callers.by_name(name) if self._callers is not None else None
            return known or Caller(name=name, key_sha256=b"", quotas=UNLIMITED)
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"no caller key: {ASK_FOR_KEY}")

    def charge(self, method: str, request: object) -> Charge | None:
        """The call's charge if ``method`` is metered (counted by the ledger), else None."""
        if not method.startswith(self._metered):
            return None
        pricing = self._pricing.get(method)
        return pricing(request) if pricing is not None and request is not None else Charge()

    async def admit(self, method: str, request: object, context: Context) -> tuple[Caller, Charge | None]:
        """Identify the caller and admit the call, or abort it (raises)."""
        try:
            caller = self.identify(context)
            current_caller.set(caller.name)
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute(names.CALLER, caller.name)
            charge = self.charge(method, request)
            if charge is not None:
                try:
                    self._ledger.admit(caller, characters=charge.characters, generation=charge.generation)
                except QuotaExceeded as exc:
                    log.info("caller %s refused on %s: %s", caller.name, method, exc)
                    trailing = [(QUOTA_METADATA, exc.quota)]
                    if exc.retry_after_header is not None:
                        trailing.append((RETRY_AFTER_METADATA, exc.retry_after_header))
                    raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), tuple(trailing)) from None
        except Refused as refused:
            if refused.code is grpc.StatusCode.UNAUTHENTICATED:
                # The peer, never the key: enough to find a misconfigured client.
                log.info("refused %s from %s: %s", method, context.peer(), refused.details)
            await context.abort(refused.code, refused.details, refused.trailing)
        return caller, charge

    def release(self, caller: Caller, charge: Charge | None) -> None:
        if charge is not None:
            self._ledger.release(caller)

    def wrap(
        self, method: str, behavior: Callable[..., Any], *, request_streaming: bool
    ) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def generator(request: object, context: Context) -> AsyncIterator[object]:
                caller, charge = await self.admit(method, None if request_streaming else request, context)
                try:
                    async for response in behavior(request, context):
                        yield response
                finally:
                    self.release(caller, charge)

            return generator

        async def coroutine(request: object, context: Context) -> object:
            caller, charge = await self.admit(method, None if request_streaming else request, context)
            try:
                return await behavior(request, context)
            finally:
                self.release(caller, charge)

        return coroutine


class Refused(Exception):
    """A call refused before its handler runs: the status, details and trailing metadata."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing = trailing


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
