"""The GenerationService servicer: validate, call the upstream (retrying before anything was
sent), forward deltas as they arrive, map errors.

No socket code here: :class:`~voxgate.generation.client.GenerationClient` speaks HTTP over the
shared session, :mod:`voxgate.generation.errors` decides every status code and
:mod:`voxgate.rpc.retry` every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc

from voxgate.generation.client import GenerationClient
from voxgate.generation.content import capture_allowed
from voxgate.generation.errors import classify_generation
from voxgate.generation.multimodal import DEFAULT_MULTIMODAL_PREFIXES
from voxgate.generation.protocol import GenerationParams, Result, ToolCall, Usage
from voxgate.generation.telemetry import ChatSpan, GenerationTelemetry
from voxgate.generation.tools import ToolCallAssembler
from voxgate.generation.v1 import generation_pb2, generation_pb2_grpc
from voxgate.generation.validation import AnyGenerateRequest, generation_params
from voxgate.rpc.errors import MD_TEXT_CHARS_SENT, Failure
from voxgate.rpc.retry import GaveUp, RetryPolicy, deadline_of, run_with_retries
from voxgate.speech.validation import InvalidRequest

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(slots=True)
class _Progress:
    """What one RPC has done so far, across attempts."""

    rpc_started: float
    deadline: float | None
    """Loop time of the caller's deadline, if it set one."""
    attempts: int = 0
    chars_sent: int = 0
    deltas_sent: int = 0
    """Deltas sent to the caller, reasoning and answer."""
    first_delta_at: float | None = None
    first_answer_at: float | None = None
    request_id: str = ""
    capture_content: bool = True
    """The caller did not ask to keep its content out of traces (see :func:`capture_allowed`)."""
    tool_calls: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    """The current attempt's tool-call pieces, assembled."""
    answer: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    """What the current attempt streamed, kept only for content capture."""


class GenerationService(generation_pb2_grpc.GenerationServiceServicer):
    """Serves ``voxgate.generation.v1.GenerationService`` through one :class:`GenerationClient`."""

    def __init__(
        self,
        client: GenerationClient,
        *,
        default_model: str,
        retry: RetryPolicy,
        telemetry: GenerationTelemetry,
        multimodal_prefixes: tuple[str, ...] = DEFAULT_MULTIMODAL_PREFIXES,
    ) -> None:
        self._client = client
        self._default_model = default_model
        self._multimodal_prefixes = multimodal_prefixes
        self._retry = retry
        self._telemetry = telemetry
        self.draining = False

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Context
    ) -> generation_pb2.GenerateResponse:
        params, progress = await self._begin(request, context)
        result = await self._with_retries(params, self._answer_once(params, progress), context, progress)
        self._telemetry.done(params.model, result, None, None)
        return generation_pb2.GenerateResponse(
            text=result.text,
            finish_reason=result.finish_reason or "",
            usage=_usage(result.usage),
            request_id=result.request_id,
            model=params.model,
            attempts=progress.attempts,
            reasoning=result.reasoning,
            tool_calls=_tool_calls(progress.tool_calls.calls()),
        )

    def _answer_once(
        self, params: GenerationParams, progress: _Progress
    ) -> Callable[[ChatSpan], Awaitable[Result]]:
        async def attempt(span: ChatSpan) -> Result:
            result = await self._client.generate(params)
            progress.tool_calls = ToolCallAssembler()
            progress.tool_calls.add(result.tool_calls)
            span.output(result, result.text, result.reasoning, progress.tool_calls.calls())
            return result

        return attempt

    async def GenerateStream(  # type: ignore[override]  # writes with context.write (see below)
        self, request: generation_pb2.GenerateStreamRequest, context: Context
    ) -> None:
        # A coroutine with context.write(), as Synthesize: a client cancel raises right here,
        # and aclosing() closes the upstream response (and its connection) at once.
        params, progress = await self._begin(request, context)
        last = await self._with_retries(
            params, lambda span: self._stream_once(params, context, progress, span), context, progress
        )
        ttft_s = (progress.first_delta_at or time.perf_counter()) - progress.rpc_started
        ttfat_s = (progress.first_answer_at - progress.rpc_started) if progress.first_answer_at else None
        self._telemetry.done(
            params.model,
            last,
            ttft_s * 1000 if progress.first_delta_at else None,
            ttfat_s * 1000 if ttfat_s is not None else None,
        )
        await context.write(
            generation_pb2.GenerateStreamResponse(
                delta=last.text,
                reasoning_delta=last.reasoning,
                finish_reason=last.finish_reason or "",
                usage=_usage(last.usage),
                request_id=last.request_id or progress.request_id,
                model=params.model,
                time_to_first_token_ms=round(ttft_s * 1000),
                time_to_first_answer_token_ms=round(ttfat_s * 1000) if ttfat_s is not None else 0,
                attempts=progress.attempts,
                tool_calls=_tool_calls(progress.tool_calls.calls()),
            )
        )

    async def _begin(
        self, request: AnyGenerateRequest, context: Context
    ) -> tuple[GenerationParams, _Progress]:
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance"
            )
        try:
            params = generation_params(request, self._default_model, self._multimodal_prefixes)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        progress = _Progress(rpc_started=time.perf_counter(), deadline=deadline_of(context))
        progress.capture_content = capture_allowed(context.invocation_metadata())
        return params, progress

    async def _stream_once(
        self, params: GenerationParams, context: Context, progress: _Progress, span: ChatSpan
    ) -> Result:
        """One upstream attempt: forward every delta but the last, return the last result.

        Reasoning and answer text go out as they come; tool-call pieces are assembled and go
        out whole on the last message.
        """
        first_chunk = True
        progress.tool_calls = ToolCallAssembler()
        progress.answer, progress.reasoning = [], []
        async with contextlib.aclosing(self._client.stream(params)) as results:
            async for result in results:
                if first_chunk:
                    span.first_chunk(time.perf_counter())
                    first_chunk = False
                progress.request_id = result.request_id or progress.request_id
                progress.tool_calls.add(result.tool_calls)
                if span.capturing:
                    progress.answer.append(result.text)
                    progress.reasoning.append(result.reasoning)
                if result.reasoning or result.text:
                    now = time.perf_counter()
                    progress.first_delta_at = progress.first_delta_at or now
                    if result.text:
                        progress.first_answer_at = progress.first_answer_at or now
                if result.finish_reason is not None:
                    answer, reasoning = "".join(progress.answer), "".join(progress.reasoning)
                    span.output(result, answer, reasoning, progress.tool_calls.calls())
                    return result
                if result.reasoning:
                    progress.deltas_sent += 1
                    await context.write(
                        generation_pb2.GenerateStreamResponse(
                            reasoning_delta=result.reasoning, request_id=progress.request_id
                        )
                    )
                if result.text:
                    progress.chars_sent += len(result.text)
                    progress.deltas_sent += 1
                    delta = generation_pb2.GenerateStreamResponse(
                        delta=result.text, request_id=progress.request_id
                    )
                    await context.write(delta)
        raise AssertionError("GenerationClient.stream ended without a last result")  # it raises instead

    async def _with_retries(
        self,
        params: GenerationParams,
        attempt: Callable[[ChatSpan], Awaitable[Result]],
        context: Context,
        progress: _Progress,
    ) -> Result:
        async def attempt_once(number: int) -> Result:
            progress.attempts = number
            # The caller's deadline bounds each attempt: one that overruns ends DEADLINE_EXCEEDED.
            capture = progress.capture_content
            async with (
                asyncio.timeout_at(progress.deadline),
                self._telemetry.call(params, number, capture_content=capture) as span,
            ):
                result = await attempt(span)
                span.finished(result)
                return result

        try:
            return await run_with_retries(
                attempt_once,
                policy=self._retry,
                classify=classify_generation,
                sent_anything=lambda: progress.deltas_sent > 0,
                output="text",
                deadline=progress.deadline,
            )
        except GaveUp as gave_up:
            await self._fail(context, gave_up.failure, progress)

    async def _fail(self, context: Context, failure: Failure, progress: _Progress) -> NoReturn:
        message = failure.message
        if progress.deltas_sent:
            # Never a silently short answer: say what was delivered before the break.
            message = (
                f"answer interrupted after {progress.chars_sent} characters in {progress.deltas_sent}"
                f" deltas; the text is incomplete: {failure.message}"
            )
        elif progress.attempts > 1:
            message = f"{message} (after {progress.attempts} attempts)"
        log.warning("generation failed: %s %s", failure.code.name, message)
        context.set_trailing_metadata((*failure.metadata, (MD_TEXT_CHARS_SENT, str(progress.chars_sent))))
        await context.abort(failure.code, message)


def _usage(usage: Usage) -> generation_pb2.Usage:
    return generation_pb2.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


def _tool_calls(calls: tuple[ToolCall, ...]) -> list[generation_pb2.ToolCall]:
    return [generation_pb2.ToolCall(id=call.id, name=call.name, arguments=call.arguments) for call in calls]
