"""Spans and metrics of Generate and GenerateStream, per the OTel GenAI conventions.

Each upstream attempt is a CLIENT span ``chat {model}`` (``gen_ai.operation.name`` chat,
``gen_ai.provider.name`` dashscope, the ``gen_ai.request.*`` parameters that were set,
and on success ``gen_ai.response.id``, ``gen_ai.response.finish_reasons`` and
``gen_ai.usage.*``), a child of the RPC's server span. Streaming attempts also get the
time to the first chunk, as an attribute and an event at that moment.

What the shared aiohttp session did for the attempt (connection reused or opened, time
queued for one) comes from an ``aiohttp.TraceConfig`` (:meth:`GenerationTelemetry.trace_config`):
its signals fire inside the request, in the attempt's task, so the current span is the
attempt's. Retries are events on the server span, recorded by :mod:`voxgate.rpc.retry`.

Reasoning and tool calls: ``gen_ai.usage.reasoning.output_tokens`` when the upstream reports
them, ``gen_ai.response.finish_reasons`` ``["tool_calls"]`` and ``gen_ai.tool.call.*`` no more
(a chat span makes no call; its output message lists the calls, with content capture on).
Prompt and answer content only on opt-in: :mod:`voxgate.generation.content`.
"""

from __future__ import annotations

import time
from types import SimpleNamespace, TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opentelemetry import trace

from voxgate.generation.content import ContentCapture
from voxgate.generation.protocol import GenerationParams, Result, ToolCall
from voxgate.observability import names
from voxgate.observability.telemetry import Telemetry

PROVIDER = "dashscope"
OPERATION = "chat"


class ChatSpan:
    """The ``chat {model}`` span of one attempt: ``async with generation.call(params, n) as span``."""

    __slots__ = ("_capture", "_span", "_started", "_use")

    def __init__(
        self,
        tracer: trace.Tracer | None,
        attributes: dict[str, Any],
        model: str,
        capture: ContentCapture | None = None,
    ) -> None:
        self._capture = capture if tracer is not None else None
        if tracer is None:
            self._started = time.perf_counter()
            self._span: trace.Span = trace.INVALID_SPAN
            self._use = None
            return
        self._span = tracer.start_span(
            f"{OPERATION} {model}", kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        # After start_span, not before: an exporter thread holding the GIL inside it would otherwise
        # count towards the time to the first chunk, which then outlasts the span itself.
        self._started = time.perf_counter()
        self._use = trace.use_span(self._span, end_on_exit=True, record_exception=False)

    async def __aenter__(self) -> ChatSpan:
        if self._use is not None:
            self._use.__enter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._use is None:
            return
        if exc is not None:
            self._span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
            self._span.set_status(trace.StatusCode.ERROR, str(exc) or type(exc).__qualname__)
            self._span.add_event(
                names.EVENT_EXCEPTION,
                {names.EXCEPTION_TYPE: type(exc).__qualname__, names.EXCEPTION_MESSAGE: str(exc)},
            )
        self._use.__exit__(exc_type, exc, tb)

    def first_chunk(self, at: float) -> None:
        """The first chunk of a streamed answer arrived at ``at`` (``time.perf_counter()``)."""
        if self._use is not None:
            delay_ms = (at - self._started) * 1000
            timestamp_ns = time.time_ns() - int((time.perf_counter() - at) * 1e9)
            self._span.add_event(
                names.EVENT_FIRST_CHUNK,
                {names.GEN_AI_TIME_TO_FIRST_CHUNK_MS: delay_ms},
                timestamp=timestamp_ns,
            )
            self._span.set_attribute(names.GEN_AI_TIME_TO_FIRST_CHUNK_MS, delay_ms)

    @property
    def capturing(self) -> bool:
        """Content goes into this span: keep the streamed text for :meth:`output`."""
        return self._capture is not None

    def output(self, result: Result, text: str, reasoning: str, tool_calls: tuple[ToolCall, ...]) -> None:
        """The whole answer of the attempt (``result`` is its last chunk), for content capture."""
        if self._capture is not None:
            self._span.set_attributes(
                self._capture.response(text, reasoning, tool_calls, result.finish_reason)
            )

    def finished(self, result: Result) -> None:
        """The attempt returned ``result`` (the whole answer, or a stream's last chunk)."""
        if self._use is not None:
            attributes: dict[str, Any] = {
                names.GEN_AI_USAGE_INPUT_TOKENS: result.usage.input_tokens,
                names.GEN_AI_USAGE_OUTPUT_TOKENS: result.usage.output_tokens,
            }
            if result.usage.reasoning_tokens:
                attributes[names.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = result.usage.reasoning_tokens
            if result.request_id:
                attributes[names.GEN_AI_RESPONSE_ID] = result.request_id
            if result.finish_reason:
                attributes[names.GEN_AI_RESPONSE_FINISH_REASONS] = [result.finish_reason]
            self._span.set_attributes(attributes)


class GenerationTelemetry:
    """What the generation servicer and the shared HTTP session report; one per server."""

    def __init__(self, telemetry: Telemetry, *, upstream_url: str, content_max_chars: int = 16384) -> None:
        self._tracer = telemetry.tracer if telemetry.traces else None
        self._metrics = telemetry.metrics
        self._capture = (
            ContentCapture(max_chars=content_max_chars) if telemetry.capture_message_content else None
        )
        url = urlsplit(upstream_url)
        self._server: dict[str, Any] = {names.SERVER_ADDRESS: url.hostname or ""}
        if url.port or url.scheme in ("http", "https"):
            self._server[names.SERVER_PORT] = url.port or (443 if url.scheme == "https" else 80)
        meter = telemetry.meter
        self._ttft = meter.create_histogram(
            names.METRIC_TIME_TO_FIRST_TOKEN,
            unit="ms",
            description="GenerateStream: time from the RPC's arrival to the first delta sent (reasoning"
            " or answer)",
        )
        self._ttfat = meter.create_histogram(
            names.METRIC_TIME_TO_FIRST_ANSWER_TOKEN,
            unit="ms",
            description="GenerateStream: time from the RPC's arrival to the first answer delta sent",
        )
        self._tokens = meter.create_histogram(
            names.METRIC_GEN_AI_TOKEN_USAGE, unit="{token}", description="tokens per generation, by type"
        )
        self._http_created = meter.create_counter(
            names.METRIC_HTTP_CREATED, unit="{connection}", description="upstream HTTP connections opened"
        )
        self._http_reused = meter.create_counter(
            names.METRIC_HTTP_REUSED,
            unit="{request}",
            description="upstream HTTP requests sent on a kept-alive connection",
        )

    def call(self, params: GenerationParams, attempt: int, *, capture_content: bool = True) -> ChatSpan:
        """The span of one attempt; ``capture_content`` False: the caller asked its content kept out."""
        if self._tracer is None:
            return ChatSpan(None, {}, params.model)
        attributes = self._request_attributes(params, attempt)
        capture = self._capture if capture_content else None
        if capture is not None:
            attributes.update(capture.request(params))
        return ChatSpan(self._tracer, attributes, params.model, capture)

    def _request_attributes(self, params: GenerationParams, attempt: int) -> dict[str, Any]:
        sampling = params.sampling
        attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION_NAME: OPERATION,
            names.GEN_AI_PROVIDER_NAME: PROVIDER,
            names.GEN_AI_REQUEST_MODEL: params.model,
            names.GENERATION_ATTEMPT: attempt,
            **self._server,
        }
        for name, value in (
            (names.GEN_AI_REQUEST_MAX_TOKENS, sampling.max_tokens),
            (names.GEN_AI_REQUEST_TEMPERATURE, sampling.temperature),
            (names.GEN_AI_REQUEST_TOP_P, sampling.top_p),
            (names.GEN_AI_REQUEST_TOP_K, sampling.top_k),
            (names.GEN_AI_REQUEST_SEED, sampling.seed),
            (names.GEN_AI_REQUEST_PRESENCE_PENALTY, sampling.presence_penalty),
            (names.GENERATION_REPETITION_PENALTY, sampling.repetition_penalty),
            (names.GENERATION_ENABLE_THINKING, sampling.enable_thinking),
        ):
            if value is not None:
                attributes[name] = value
        if sampling.stop:
            attributes[names.GEN_AI_REQUEST_STOP_SEQUENCES] = list(sampling.stop)
        if params.tool_choice:
            attributes[names.GENERATION_TOOL_CHOICE] = params.tool_choice
        if params.multimodal:
            attributes[names.GENERATION_MULTIMODAL] = True
        return attributes

    def done(
        self,
        model: str,
        result: Result,
        time_to_first_token_ms: float | None,
        time_to_first_answer_token_ms: float | None,
    ) -> None:
        """The RPC succeeded with ``result``; the times to the first delta (reasoning or answer)
        and to the first answer delta, for a stream that sent them."""
        span = trace.get_current_span()  # the RPC's server span
        if span.is_recording():
            if time_to_first_token_ms is not None:
                span.set_attribute(names.GENERATION_TIME_TO_FIRST_TOKEN_MS, time_to_first_token_ms)
            if time_to_first_answer_token_ms is not None:
                span.set_attribute(
                    names.GENERATION_TIME_TO_FIRST_ANSWER_TOKEN_MS, time_to_first_answer_token_ms
                )
        if not self._metrics:
            return
        common = {
            names.GEN_AI_OPERATION_NAME: OPERATION,
            names.GEN_AI_PROVIDER_NAME: PROVIDER,
            names.GEN_AI_REQUEST_MODEL: model,
        }
        if time_to_first_token_ms is not None:
            self._ttft.record(time_to_first_token_ms, common)
        if time_to_first_answer_token_ms is not None:
            self._ttfat.record(time_to_first_answer_token_ms, common)
        self._tokens.record(result.usage.input_tokens, {**common, names.GEN_AI_TOKEN_TYPE: "input"})
        self._tokens.record(result.usage.output_tokens, {**common, names.GEN_AI_TOKEN_TYPE: "output"})

    # -- the shared aiohttp session ------------------------------------------------------------

    def trace_config(self) -> aiohttp.TraceConfig:
        """Signals of the shared session: pass to ``ClientSession(trace_configs=[...])``."""
        config = aiohttp.TraceConfig()
        config.on_connection_queued_start.append(self._queued_start)
        config.on_connection_queued_end.append(self._queued_end)
        config.on_connection_create_start.append(self._create_start)
        config.on_connection_create_end.append(self._create_end)
        config.on_connection_reuseconn.append(self._reused)
        return config

    async def _queued_start(self, _session: object, context: SimpleNamespace, _params: object) -> None:
        context.queued_at = time.perf_counter()

    async def _queued_end(self, _session: object, context: SimpleNamespace, _params: object) -> None:
        waited_ms = (time.perf_counter() - context.queued_at) * 1000
        trace.get_current_span().set_attribute(names.HTTP_CONNECTION_WAIT_MS, waited_ms)

    async def _create_start(self, _session: object, context: SimpleNamespace, _params: object) -> None:
        context.connect_at = time.perf_counter()

    async def _create_end(self, _session: object, context: SimpleNamespace, _params: object) -> None:
        self._http_created.add(1, self._server)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    names.HTTP_CONNECTION_REUSED: False,
                    names.HTTP_CONNECTION_CREATE_MS: (time.perf_counter() - context.connect_at) * 1000,
                }
            )

    async def _reused(self, _session: object, _context: SimpleNamespace, _params: object) -> None:
        self._http_reused.add(1, self._server)
        trace.get_current_span().set_attribute(names.HTTP_CONNECTION_REUSED, True)
