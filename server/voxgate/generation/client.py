"""The DashScope generation client over the shared session.

``GenerationClient(session, base_url=..., api_key=...)``; ``await client.generate(params)``
for one JSON answer, or ``async with contextlib.aclosing(client.stream(params)) as results``
for SSE deltas. Every failure comes out as :class:`~voxgate.generation.protocol.UpstreamError`
(the upstream said no), :class:`~voxgate.generation.protocol.UpstreamUnavailable` (no answer) or
:class:`~voxgate.generation.protocol.UpstreamProtocolError`; aiohttp's own exceptions stay in here.

Connection discipline: a response read to its end goes back to the session's pool; one
abandoned early (error, client cancel, deadline) is closed, never handed to the next call.

Timeouts: a streamed call keeps the session's (the first-byte timeout bounds the wait for the
stream to start and every gap in it); an answer that is not streamed arrives all at once, after
the whole generation, so it is bounded by the total timeout only. A timeout that strikes after
the whole request went out is :class:`UpstreamTimedOut` with ``request_sent``: the upstream
may still be generating, and bills, that answer, so it is retried only if the operator opted
in (``retry_sent_timeouts``). The session's :func:`request_sent_trace_config` tells when the
request's last byte was handed to the socket.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp

from .protocol import (
    GenerationParams,
    Result,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimedOut,
    UpstreamUnavailable,
    parse_error,
    parse_result,
    request_body,
    request_headers,
)
from .sse import SseEvent, SseParser

EVENT_ERROR = "error"
EVENT_STREAM = "text/event-stream"


class _Sending(SimpleNamespace):
    """One request's progress, seen by :func:`request_sent_trace_config` (``trace_request_ctx``)."""

    def __init__(self, size: int) -> None:
        super().__init__(size=size, sent_bytes=0)

    @property
    def sent(self) -> bool:
        return bool(self.sent_bytes >= self.size)


def request_sent_trace_config() -> aiohttp.TraceConfig:
    """Counts the body bytes handed to the socket; :func:`open_session` installs it."""

    async def on_chunk(_session: object, context: SimpleNamespace, params: Any) -> None:
        sending = context.trace_request_ctx
        if isinstance(sending, _Sending):
            sending.sent_bytes += len(params.chunk)

    config = aiohttp.TraceConfig()
    config.on_request_chunk_sent.append(on_chunk)
    return config


class GenerationClient:
    """Calls ``POST {base_url}/services/aigc/{text,multimodal}-generation/generation``. Holds
    no connections itself: the session does."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        workspace: str = "",
        retry_sent_timeouts: bool = False,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._workspace = workspace
        self._retry_sent_timeouts = retry_sent_timeouts
        session_timeout = session.timeout
        # Not streamed: no first-byte limit, the answer comes whole once generated.
        self._answer_timeout = aiohttp.ClientTimeout(
            total=session_timeout.total,
            connect=session_timeout.connect,
            sock_connect=session_timeout.sock_connect,
            sock_read=None,
        )

    def __repr__(self) -> str:  # never the key
        return f"GenerationClient({self._base_url!r})"

    async def generate(self, params: GenerationParams) -> Result:
        """The whole answer. Raises one of the three upstream exceptions."""
        body = request_body(params, stream=False)
        sending = _Sending(len(body))
        try:
            async with self._post(params, body, sending, stream=False) as response:
                data = await response.read()
                if response.status != 200:
                    raise _error_from_body(response, data)
                return parse_result(data)
        except TimeoutError as exc:
            raise self._timed_out(exc, sending) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(_describe(exc)) from exc

    async def stream(self, params: GenerationParams) -> AsyncGenerator[Result, None]:
        """Yield each delta as it arrives; the last one has ``finish_reason`` set.

        Iterate inside ``contextlib.aclosing`` so an early exit closes the connection at once.
        """
        body = request_body(params, stream=True)
        sending = _Sending(len(body))
        try:
            async with self._post(params, body, sending, stream=True) as response:
                if response.status != 200:
                    raise _error_from_body(response, await response.read())
                if EVENT_STREAM not in response.headers.get("Content-Type", ""):
                    # A JSON answer to a streaming request is one result (the SDK does the same).
                    yield parse_result(await response.read())
                    return
                finished = False
                try:
                    parser = SseParser()
                    async for chunk in response.content.iter_any():
                        for result in _results(parser.feed(chunk)):
                            if result.finish_reason is not None:
                                # Read to the end first, so the connection goes back to the pool.
                                await response.read()
                                finished = True
                            yield result
                            if finished:
                                return
                    for result in _results([parser.close()]):  # no blank line after the last event
                        finished = result.finish_reason is not None
                        yield result
                        if finished:
                            return
                finally:
                    if not finished:
                        response.close()  # abandoned mid-answer: this connection is not reusable
                raise UpstreamUnavailable("the stream ended before its last chunk")
        except TimeoutError as exc:
            raise self._timed_out(exc, sending) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(_describe(exc)) from exc

    def _post(self, params: GenerationParams, body: bytes, sending: _Sending, *, stream: bool) -> Any:
        timeout: dict[str, Any] = {} if stream else {"timeout": self._answer_timeout}
        return self._session.post(
            self._base_url + params.path,
            data=body,
            headers=request_headers(self._api_key, stream=stream, workspace=self._workspace),
            trace_request_ctx=sending,
            **timeout,
        )

    def _timed_out(self, exc: TimeoutError, sending: _Sending) -> UpstreamTimedOut:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            which = "connecting (VOXGATE_HTTP_CONNECT_TIMEOUT_S)"
        elif isinstance(exc, aiohttp.SocketTimeoutError):
            which = "waiting for the stream (VOXGATE_HTTP_FIRST_BYTE_TIMEOUT_S)"
        else:
            which = "for the whole call (VOXGATE_HTTP_TOTAL_TIMEOUT_S)"
        if not sending.sent:
            return UpstreamTimedOut(f"upstream timed out {which}", request_sent=False, retryable=True)
        if self._retry_sent_timeouts:
            note = "retried as VOXGATE_HTTP_RETRY_SENT_TIMEOUTS allows"
        else:
            note = (
                "not retried: the request had been sent, so the upstream may still generate and bill"
                " the answer (VOXGATE_HTTP_RETRY_SENT_TIMEOUTS)"
            )
        return UpstreamTimedOut(
            f"upstream timed out {which}; {note}", request_sent=True, retryable=self._retry_sent_timeouts
        )


def _results(events: Iterable[SseEvent | None]) -> Iterator[Result]:
    for event in events:
        if event is not None:
            result = _result(event)
            if result is not None:
                yield result


def _result(event: SseEvent) -> Result | None:
    if event.event == EVENT_ERROR:
        raise parse_error(None, event.data)
    if not event.data:
        return None
    return parse_result(event.data)


def _error_from_body(response: aiohttp.ClientResponse, body: bytes) -> UpstreamError:
    """Non-2xx: a JSON body, or (streaming) an SSE body whose first ``data:`` holds the error
    (docs/protocol.md#error-bodies)."""
    if EVENT_STREAM in response.headers.get("Content-Type", ""):
        parser = SseParser()
        events = [*parser.feed(body), parser.close()]
        for event in events:
            if event is not None and event.data:
                return parse_error(response.status, event.data)
    return parse_error(response.status, body)


def _describe(exc: BaseException) -> str:
    return f"upstream connection failed: {type(exc).__name__}: {exc}"


__all__ = [
    "GenerationClient",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimedOut",
    "UpstreamUnavailable",
    "request_sent_trace_config",
]
