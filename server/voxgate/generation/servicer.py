"""The GenerationService servicer: validate, call the upstream (retrying before anything was
sent), forward deltas as they arrive, map errors.

No socket code here: :class:`~voxgate.generation.client.GenerationClient` speaks HTTP over the
shared session, :mod:`voxgate.rpc.errors` decides every status code and
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
from voxgate.generation.multimodal import DEFAULT_MULTIMODAL_PREFIXES
from voxgate.generation.protocol import GenerationParams, Result, ToolCall, Usage
from voxgate.generation.telemetry import ChatSpan, GenerationTelemetry
from voxgate.generation.tools import ToolCallAssembler
from voxgate.generation.v1 import generation_pb2, generation_pb2_grpc
from voxgate.generation.validation import AnyGenerateRequest, generation_params
from voxgate.rpc.errors import MD_TEXT_CHARS_SENT, Failure, classify
from voxgate.rpc.retry import AttemptLog, RetryPolicy
from voxgate.speech.validation import InvalidRequest

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(slots=True)
class _Progress:
    """What one RPC has done so far, across attempts."""

    rpc_started: float
    deadline: float | None
    """Loop time of the caller's deadline, if it set one."""
    log: AttemptLog = field(default_factory=AttemptLog)
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
            attempts=len(progress.log),
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
                attempts=len(progress.log),
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
        remaining: float | None = context.time_remaining()
        loop_now = asyncio.get_running_loop().time()
        deadline = None if remaining is None else loop_now + remaining
        progress = _Progress(rpc_started=time.perf_counter(), deadline=deadline)
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
                    await context.write(
                        generation_pb2.GenerateStreamResponse(
                            delta=result.text, request_id=progress.request_id
                        )
                    )
        raise AssertionError("GenerationClient.stream ended without a last result")  # it raises instead

    async def _with_retries(
        self,
        params: GenerationParams,
        attempt: Callable[[ChatSpan], Awaitable[Result]],
        context: Context,
        progress: _Progress,
    ) -> Result:
        loop = asyncio.get_running_loop()
        while True:
            started = time.perf_counter()
            try:
                async with (
                    asyncio.timeout_at(progress.deadline),
                    self._telemetry.call(
                        params, len(progress.log) + 1, capture_content=progress.capture_content
                    ) as span,
                ):
                    result = await attempt(span)
                    span.finished(result)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                failure = classify(exc)
                remaining = None if progress.deadline is None else progress.deadline - loop.time()
                delay_s = self._retry.delay(
                    attempts_made=len(progress.log) + 1,
                    retryable=failure.retryable,
                    sent_anything=progress.deltas_sent > 0,
                    remaining_s=remaining,
                )
                duration_s = time.perf_counter() - started
                progress.log.failed(failure.code, failure.message, duration_s, delay_s)
                if delay_s is None:
                    await self._fail(context, failure, progress)
                self._telemetry.retry(len(progress.log), failure.message, delay_s)
                log.info(
                    "generation attempt %d failed (%s); retrying in %.2fs",
                    len(progress.log),
                    failure.message,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                continue
            progress.log.succeeded(time.perf_counter() - started)
            return result

    async def _fail(self, context: Context, failure: Failure, progress: _Progress) -> NoReturn:
        message = failure.message
        if progress.deltas_sent:
            # Never a silently short answer: say what was delivered before the break.
            message = (
                f"answer interrupted after {progress.chars_sent} characters in {progress.deltas_sent}"
                f" deltas; the text is incomplete: {failure.message}"
            )
        elif len(progress.log) > 1:
            message = f"{message} (after {len(progress.log)} attempts)"
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
