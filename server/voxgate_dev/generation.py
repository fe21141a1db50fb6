"""The DashScope text- and multimodal-generation HTTP endpoints of the local upstream
(docs/protocol.md#generation-http-api).

``POST /api/v1/services/aigc/text-generation/generation`` (``local-echo``) and
``.../multimodal-generation/generation`` (``local-echo-vl``, content as lists of parts, as
the vendor SDK's ``MultiModalConversation`` sends and reads it): Bearer auth, JSON answers, and
SSE when the request sends ``X-DashScope-SSE: enable`` or ``Accept: text/event-stream``,
framed like the service (``id:``/``event:result``/``:HTTP_STATUS/200``/``data:``, no spaces,
no ``[DONE]``, the stream ends after the chunk whose finish_reason is not "null"). The model
is :mod:`~voxgate_dev.local_model`; faults come from :class:`GenerationFaults`. A stream sends
the reasoning first (``reasoning_content``), then the answer, then a tool call's pieces
(``tool_calls`` with the same ``index``; the first carries the id and name), one chunk each.

It counts the TCP connections that carry generation requests (a connection is counted at
its first request), so tests and the benchmark can see whether a client reuses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from voxgate.generation.protocol import FINISH_NOT_YET, GENERATION_PATH, MULTIMODAL_PATH

from .auth import error_body, error_response, is_authorized, unauthorized
from .faults import FaultSwitch, GenerationFaults
from .generation_request import GenerationSpec, parse_generation
from .local_model import TOOL_ARGUMENTS, Answer, answer
from .options import UpstreamOptions
from .speech_request import RequestError
from .stats import Stats

HTTP_API_PATH = "/api/v1"
"""Base path of DashScope's HTTP API (docs/protocol.md#generation-endpoint)."""
EVENT_STREAM = "text/event-stream;charset=UTF-8"


class GenerationEndpoint:
    """The generation route. ``DevUpstream`` adds it and asks it for the open-connection gauge."""

    def __init__(self, *, options: UpstreamOptions, faults: FaultSwitch, stats: Stats) -> None:
        self.options = options
        self.faults = faults
        self.stats = stats
        self._connections: set[object] = set()  # RequestHandlers (one per TCP connection) seen
        self._stopping = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(HTTP_API_PATH + GENERATION_PATH, self.handle)
        app.router.add_post(HTTP_API_PATH + MULTIMODAL_PATH, self.handle)

    def count_open(self, open_connections: Iterable[object]) -> None:
        """Update the gauge from the server's open connections; forget the closed ones."""
        self._connections &= set(open_connections)
        self.stats.generation_connections_open = len(self._connections)

    def stop(self) -> None:
        """Cut short any injected first-byte delay, so shutdown does not wait for it."""
        self._stopping.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.protocol not in self._connections:
            self._connections.add(request.protocol)
            self.stats.generation_connections_opened += 1
        if not is_authorized(request, self.options.api_key):
            return unauthorized()
        stream = request.headers.get(
            "X-DashScope-SSE", ""
        ).lower() == "enable" or "text/event-stream" in request.headers.get("Accept", "")
        try:
            multimodal = request.path.endswith(MULTIMODAL_PATH)
            spec = parse_generation(await request.read(), multimodal=multimodal)
        except RequestError as exc:
            return error_response(400, exc.code, exc.message)
        faults = self.faults.for_generation()
        self.stats.generations_started += 1
        if faults.first_byte_delay_ms:
            with contextlib.suppress(TimeoutError):  # interruptible, so stop() need not wait
                await asyncio.wait_for(self._stopping.wait(), faults.first_byte_delay_ms / 1000)
        result = answer(
            spec.messages,
            max_tokens=spec.max_tokens,
            stop=spec.stop,
            thinking=spec.enable_thinking,
            tools=spec.tools,
            images=spec.images,
        )
        steps = _steps(result)
        if faults.drop_after_tokens == 0 or (not stream and faults.drop_after_tokens is not None):
            return self._drop(request)
        if faults.error_status is not None:
            self.stats.generations_failed += 1
            code, message = error_body(faults.error_status)
            return _error(faults.error_status, code, message, stream=stream)
        if not stream:
            if faults.error_after_tokens is not None:
                self.stats.generations_failed += 1
                return _error(500, faults.error_code, faults.error_message, stream=False)
            if self.options.token_interval_ms and len(steps) > 1:
                # A whole answer takes as long to produce as its stream would.
                await asyncio.sleep((len(steps) - 1) * self.options.token_interval_ms / 1000)
            self.stats.generation_tokens_sent += len(steps)
            self.stats.generations_finished += 1
            return web.json_response(_body(spec, result, steps, result.finish_reason))
        return await self._stream(request, spec, result, steps, faults)

    async def _stream(
        self,
        request: web.Request,
        spec: GenerationSpec,
        result: Answer,
        steps: list[_Step],
        faults: GenerationFaults,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"})
        await response.prepare(request)
        self.stats.generations_streaming += 1
        request_id = str(uuid.uuid4())
        chunks = steps or [_Step("text", "")]  # an empty answer is still one last chunk
        try:
            for index, step in enumerate(chunks):
                if index == faults.error_after_tokens:
                    self.stats.generations_failed += 1
                    await response.write(_error_event(index + 1, faults, request_id))
                    break
                if index == faults.drop_after_tokens:
                    return self._drop(request)
                if index and self.options.token_interval_ms:
                    await asyncio.sleep(self.options.token_interval_ms / 1000)
                last = index == len(chunks) - 1
                shown, first = ([step], index) if spec.incremental_output else (chunks[: index + 1], 0)
                finish = result.finish_reason if last else FINISH_NOT_YET
                body = _body(spec, result, shown, finish, index + 1 if steps else 0, request_id, first)
                await response.write(_frame(index + 1, "result", 200, body))
                self.stats.generation_tokens_sent += 1 if step.text else 0
            else:
                self.stats.generations_finished += 1
            await response.write_eof()
        except ConnectionError:
            self.stats.generations_cancelled += 1  # the client went away mid-answer
        finally:
            self.stats.generations_streaming -= 1
        return response

    def _drop(self, request: web.Request) -> web.Response:
        self.stats.generations_failed += 1
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the connection is gone


@dataclass(frozen=True, slots=True)
class _Step:
    """One token of an answer, and what it is: ``reasoning``, ``text`` or ``tool`` (arguments)."""

    kind: str
    text: str


def _steps(result: Answer) -> list[_Step]:
    steps = [_Step("reasoning", token) for token in result.reasoning]
    steps += [_Step("text", token) for token in result.tokens]
    if result.tool_call is not None:
        steps += [_Step("tool", piece) for piece in TOOL_ARGUMENTS]
    return steps


def _body(
    spec: GenerationSpec,
    result: Answer,
    steps: list[_Step],
    finish_reason: str,
    output_tokens: int | None = None,
    request_id: str | None = None,
    first_step: int = 0,
) -> dict[str, Any]:
    """A result carrying ``steps`` (from step ``first_step`` of the answer on): the whole
    answer, one chunk's delta, or a stream's text so far."""
    text = "".join(step.text for step in steps if step.kind == "text")
    if spec.result_format == "message":
        message: dict[str, Any] = {
            "role": "assistant",
            "content": ([{"text": text}] if text else []) if spec.multimodal else text,
        }
        if spec.enable_thinking:
            message["reasoning_content"] = "".join(s.text for s in steps if s.kind == "reasoning")
        arguments = [step.text for step in steps if step.kind == "tool"]
        if result.tool_call is not None and arguments:
            # The id and name come with the call's first piece, as the service streams them.
            position = first_step + next(i for i, step in enumerate(steps) if step.kind == "tool")
            first = position == len(result.reasoning) + len(result.tokens)
            function = {"name": result.tool_call.name if first else "", "arguments": "".join(arguments)}
            call = {"index": 0, "id": result.tool_call.id if first else "", "type": "function"}
            message["tool_calls"] = [{**call, "function": function}]
        output: dict[str, Any] = {"choices": [{"finish_reason": finish_reason, "message": message}]}
    else:
        output = {"text": text, "finish_reason": finish_reason}
    produced = result.output_tokens if output_tokens is None else output_tokens
    usage: dict[str, Any] = {
        "input_tokens": result.input_tokens,
        "output_tokens": produced,
        "total_tokens": result.input_tokens + produced,
    }
    if spec.enable_thinking:
        usage["output_tokens_details"] = {"reasoning_tokens": min(len(result.reasoning), produced)}
    return {"output": output, "usage": usage, "request_id": request_id or str(uuid.uuid4())}


def _frame(event_id: int, event: str, status: int, body: dict[str, Any]) -> bytes:
    """One SSE event exactly as DashScope writes it: no space after any colon
    (docs/protocol.md#sse-stream)."""
    data = json.dumps(body, ensure_ascii=False)
    return f"id:{event_id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n".encode()


def _error(status: int, code: str, message: str, *, stream: bool) -> web.Response:
    if not stream:
        return error_response(status, code, message)
    # Errors on a streaming request come as an SSE body with the error status (docs/protocol.md#error-bodies).
    body = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    return web.Response(
        status=status, body=_frame(1, "error", status, body), headers={"Content-Type": EVENT_STREAM}
    )


def _error_event(event_id: int, faults: GenerationFaults, request_id: str) -> bytes:
    status = 429 if faults.error_code.startswith("Throttling") else 500
    body = {"request_id": request_id, "code": faults.error_code, "message": faults.error_message}
    return _frame(event_id, "error", status, body)
