"""Spans and metrics of Synthesize: the upstream task span, the RPC's outcome.

The servicer makes a few calls (:meth:`SpeechTelemetry.task` around each upstream
task, :meth:`SpeechTelemetry.done` at the end; retries are recorded by
:mod:`voxgate.rpc.retry`); the RPC's server span is the current span throughout (see
:mod:`voxgate.rpc.interceptor`), and the pool's acquire spans come from
:mod:`voxgate.pool.telemetry`. With tracing off every call returns at once.
"""

from __future__ import annotations

from types import TracebackType

from opentelemetry import trace

from voxgate.observability import names
from voxgate.observability.telemetry import Telemetry
from voxgate.speech.protocol import SynthesisTask


class TaskSpan:
    """The ``voxgate.tts.task`` span of one upstream task: ``[async] with speech.task(task, n) as span``."""

    __slots__ = ("_span", "_use")

    def __init__(self, tracer: trace.Tracer | None, task: SynthesisTask, attempt: int) -> None:
        if tracer is None:
            self._span: trace.Span = trace.INVALID_SPAN
            self._use = None
            return
        params = task.params
        self._span = tracer.start_span(
            names.SPAN_TTS_TASK,
            kind=trace.SpanKind.CLIENT,
            attributes={
                names.TTS_TASK_ID: task.task_id,
                names.TTS_MODEL: params.model,
                names.TTS_VOICE: params.voice,
                names.TTS_FORMAT: params.format,
                names.TTS_SAMPLE_RATE: params.sample_rate,
                names.TTS_ATTEMPT: attempt,
            },
        )
        self._use = trace.use_span(self._span, end_on_exit=True, record_exception=False)

    def __enter__(self) -> TaskSpan:
        if self._use is not None:
            self._use.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._use is None:
            return
        if exc is not None:
            self._span.set_status(trace.StatusCode.ERROR, str(exc) or type(exc).__qualname__)
            self._span.add_event(
                names.EVENT_EXCEPTION,
                {names.EXCEPTION_TYPE: type(exc).__qualname__, names.EXCEPTION_MESSAGE: str(exc)},
            )
        self._use.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> TaskSpan:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def first_packet(self, delay_s: float) -> None:
        """The first audio frame arrived ``delay_s`` after run-task was sent."""
        if self._use is not None:
            delay_ms = delay_s * 1000
            self._span.add_event(names.EVENT_FIRST_PACKET, {names.TTS_FIRST_PACKET_DELAY_MS: delay_ms})
            self._span.set_attribute(names.TTS_FIRST_PACKET_DELAY_MS, delay_ms)

    def finished(self, task: SynthesisTask, audio_bytes: int, audio_chunks: int) -> None:
        """The task reached task-finished having delivered this much audio."""
        if self._use is not None:
            self._span.set_attributes(
                {
                    names.TTS_REQUEST_ID: task.request_id,
                    names.TTS_CHARACTERS: task.characters or 0,
                    names.TTS_AUDIO_BYTES: audio_bytes,
                    names.TTS_AUDIO_CHUNKS: audio_chunks,
                }
            )


class SpeechTelemetry:
    """What the Synthesize servicer reports; one per server."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._tracer = telemetry.tracer if telemetry.traces else None
        self._metrics = telemetry.metrics
        self._first_packet = telemetry.meter.create_histogram(
            names.METRIC_FIRST_PACKET_DELAY,
            unit="ms",
            description="Synthesize: time from the RPC's arrival to the first audio in voxgate's hands",
        )
        self._text_to_first_audio = telemetry.meter.create_histogram(
            names.METRIC_TEXT_TO_FIRST_AUDIO,
            unit="ms",
            description="SynthesizeStream: time from the first text piece to the first audio",
        )
        self._text_pieces = telemetry.meter.create_histogram(
            names.METRIC_TEXT_PIECES,
            unit="{piece}",
            description="SynthesizeStream: text pieces per stream",
        )

    def task(self, task: SynthesisTask, attempt: int) -> TaskSpan:
        return TaskSpan(self._tracer, task, attempt)

    def done(
        self,
        *,
        model: str,
        attempts: int,
        audio_bytes: int,
        first_packet_ms: float | None,
        text_pieces: int | None = None,
        text_to_first_audio_ms: float | None = None,
    ) -> None:
        """The RPC ends (well or not) after ``attempts`` with ``audio_bytes`` delivered; a stream
        also says how many ``text_pieces`` it received and how soon audio followed the first."""
        labels = {names.TTS_MODEL: model}
        if self._metrics:
            if first_packet_ms is not None:
                self._first_packet.record(first_packet_ms, labels)
            if text_to_first_audio_ms is not None:
                self._text_to_first_audio.record(text_to_first_audio_ms, labels)
            if text_pieces is not None:
                self._text_pieces.record(text_pieces, labels)
        if self._tracer is not None:
            span = trace.get_current_span()
            span.set_attributes({names.TTS_ATTEMPTS: attempts, names.TTS_AUDIO_BYTES: audio_bytes})
            if first_packet_ms is not None:
                span.set_attribute(names.TTS_FIRST_PACKET_DELAY_MS, first_packet_ms)
            if text_pieces is not None:
                span.set_attribute(names.TTS_TEXT_PIECES, text_pieces)
            if text_to_first_audio_ms is not None:
                span.set_attribute(names.TTS_TEXT_TO_FIRST_AUDIO_MS, text_to_first_audio_ms)
