"""The DashScope generation client over the shared session.

``GenerationClient(session, base_url=..., api_key=...)``; ``await client.generate(params)``
for one JSON answer, or ``async with contextlib.aclosing(client.stream(params)) as results``
for SSE deltas. Every failure comes out as :class:`~voxgate.generation.protocol.UpstreamError`
(the upstream said no), :class:`~voxgate.generation.protocol.UpstreamUnavailable` (no answer) or
:class:`~voxgate.generation.protocol.UpstreamProtocolError`; aiohttp's own exceptions stay in here.

Connection discipline: a response read to its end goes back to the session's pool; one
abandoned early (error, client cancel, deadline) is closed, never handed to the next call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import Any

import aiohttp

from .protocol import (
    GENERATION_PATH,
    GenerationParams,
    Result,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamUnavailable,
    parse_error,
    parse_result,
    request_body,
    request_headers,
)
from .sse import SseEvent, SseParser

EVENT_ERROR = "error"
EVENT_STREAM = "text/event-stream"


class GenerationClient:
    """Calls ``POST {base_url}/services/aigc/text-generation/generation``. Holds no connections
    itself: the session does."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + GENERATION_PATH
        self._api_key = api_key

    def __repr__(self) -> str:  # never the key
        return f"GenerationClient({self._url!r})"

    async def generate(self, params: GenerationParams) -> Result:
        """The whole answer. Raises one of the three upstream exceptions."""
        try:
            async with self._post(params, stream=False) as response:
                body = await response.read()
                if response.status != 200:
                    raise _error_from_body(response, body)
                return parse_result(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(_describe(exc)) from exc

    async def stream(self, params: GenerationParams) -> AsyncGenerator[Result, None]:
        """Yield each delta as it arrives; the last one has ``finish_reason`` set.

        Iterate inside ``contextlib.aclosing`` so an early exit closes the connection at once.
        """
        try:
            async with self._post(params, stream=True) as response:
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
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(_describe(exc)) from exc

    def _post(self, params: GenerationParams, *, stream: bool) -> Any:
        return self._session.post(
            self._url,
            data=request_body(params, stream=stream),
            headers=request_headers(self._api_key, stream=stream),
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
    if isinstance(exc, TimeoutError):
        return "upstream timed out (VOXGATE_HTTP_*_TIMEOUT_S)"
    return f"upstream connection failed: {type(exc).__name__}: {exc}"


__all__ = ["GenerationClient", "UpstreamError", "UpstreamProtocolError", "UpstreamUnavailable"]
