"""The VoiceService servicer: a model's streamed answer piped into one synthesis task.

Two halves run side by side in one call. Generation streams the answer from the upstream
model, writes each delta to the caller as ``text`` and cuts it into pieces
(:mod:`voxgate.voice.segmenter`) for a :class:`~voxgate.speech.text_input.TextInput`.
Speech borrows a pooled connection once the first piece exists (so a model that thinks for
long before its first token cannot trip the upstream's 23 s text gap), runs one task fed
by that input, and writes its audio to the caller as it comes. Each half retries on its
own while it has sent the caller nothing; the first half to fail for good ends the call,
naming itself, its status and what had been delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import NoReturn

import grpc

from voxgate.generation.client import GenerationClient
from voxgate.generation.errors import classify_generation
from voxgate.generation.protocol import GenerationParams, Result, Usage
from voxgate.generation.telemetry import GenerationTelemetry
from voxgate.generation.v1 import generation_pb2
from voxgate.generation.validation import generation_params
from voxgate.pool import Pool
from voxgate.rpc.errors import MD_AUDIO_BYTES_SENT, MD_TEXT_CHARS_SENT, Failure, classifier
from voxgate.rpc.retry import GaveUp, RetryPolicy, deadline_of, run_with_retries
from voxgate.speech.connection import Synthesizer
from voxgate.speech.errors import speech_failure
from voxgate.speech.protocol import SynthesisParams, SynthesisTask
from voxgate.speech.telemetry import SpeechTelemetry
from voxgate.speech.text_input import TextInput, input_failure
from voxgate.speech.validation import WIRE_TO_FORMAT, Defaults, InvalidRequest, stream_params
from voxgate.voice.segmenter import Segmenter
from voxgate.voice.telemetry import VoiceTelemetry
from voxgate.voice.v1 import voice_pb2, voice_pb2_grpc

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[voice_pb2.SpeakRequest, voice_pb2.SpeakResponse]

MD_FAILED_HALF = "voxgate-failed-half"
"""Trailing metadata of a failed Speak call: ``generation`` or ``speech``."""
GENERATION = "generation"
SPEECH = "speech"

classify_voice_speech = classifier(input_failure, speech_failure)


class HalfFailed(Exception):
    """One half of the call failed for good."""

    def __init__(self, half: str, failure: Failure) -> None:
        super().__init__(f"{half}: {failure.message}")
        self.half = half
        self.failure = failure


@dataclass(slots=True)
class _Progress:
    rpc_started: float
    text_chars: int = 0
    text_deltas: int = 0
    audio_bytes: int = 0
    audio_chunks: int = 0
    first_token_at: float | None = None
    first_audio_at: float | None = None
    generation_attempts: int = 0
    speech_attempts: int = 0
    last: Result | None = None
    task: SynthesisTask | None = None

    def ms_since_start(self, at: float | None) -> float:
        return 0.0 if at is None else (at - self.rpc_started) * 1000


class VoiceService(voice_pb2_grpc.VoiceServiceServicer):
    """Serves ``voxgate.voice.v1.VoiceService`` from the generation client and the speech pool."""

    def __init__(
        self,
        generation: GenerationClient,
        pool: Pool[Synthesizer],
        *,
        default_model: str,
        speech_defaults: Defaults,
        retry: RetryPolicy,
        speech_retry: RetryPolicy,
        generation_telemetry: GenerationTelemetry,
        speech_telemetry: SpeechTelemetry,
        telemetry: VoiceTelemetry,
        idle_timeout_s: float,
    ) -> None:
        self._generation = generation
        self._pool = pool
        self._default_model = default_model
        self._speech_defaults = speech_defaults
        self._retry = retry
        self._speech_retry = speech_retry
        self._generation_telemetry = generation_telemetry
        self._speech_telemetry = speech_telemetry
        self._telemetry = telemetry
        self._idle_timeout_s = idle_timeout_s
        self.draining = False

    async def Speak(  # type: ignore[override]  # writes with context.write, as Synthesize
        self, request: voice_pb2.SpeakRequest, context: Context
    ) -> None:
        progress = _Progress(rpc_started=time.perf_counter())
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance"
            )
        try:
            gen_params = generation_params(
                generation_pb2.GenerateStreamRequest(
                    model=request.model, messages=request.messages, sampling=request.sampling
                ),
                self._default_model,
            )
            if not request.HasField("speech"):
                request.speech.SetInParent()  # every field of SynthesisConfig has a default
            speech_params = stream_params(request.speech, self._speech_defaults, field="speech")
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        text = TextInput(
            idle_timeout_s=self._idle_timeout_s,
            max_pieces=2**31,
            idle_from_first_piece=True,
            idle_hint="the model wrote nothing for that long; VOXGATE_STREAM_IDLE_TIMEOUT_S",
        )
        writing = asyncio.Lock()  # the two halves write to one stream
        deadline = deadline_of(context)
        halves = [
            asyncio.create_task(self._generate(gen_params, text, context, writing, progress, deadline)),
            asyncio.create_task(self._speak(speech_params, text, context, writing, progress, deadline)),
        ]
        try:
            failure = await _first_failure(halves)
        finally:
            for half in halves:
                half.cancel()
        self._telemetry.done(
            model=gen_params.model,
            time_to_first_token_ms=progress.ms_since_start(progress.first_token_at)
            if progress.first_token_at
            else None,
            time_to_first_audio_ms=progress.ms_since_start(progress.first_audio_at)
            if progress.first_audio_at
            else None,
            pieces=text.received,
            failed_half=failure.half if failure else None,
        )
        if failure is not None:
            await self._fail(context, failure, progress)
        summary = self._summary(gen_params, speech_params, text, progress)
        await context.write(voice_pb2.SpeakResponse(summary=summary))

    # -- generation ------------------------------------------------------------------------------

    async def _generate(
        self,
        params: GenerationParams,
        text: TextInput,
        context: Context,
        writing: asyncio.Lock,
        progress: _Progress,
        deadline: float | None,
    ) -> None:
        async def attempt(number: int) -> Result:
            progress.generation_attempts = number
            async with (
                asyncio.timeout_at(deadline),
                self._generation_telemetry.call(params, number) as span,
                contextlib.aclosing(self._generation.stream(params)) as results,
            ):
                segmenter = Segmenter()
                async for result in results:
                    if result.text:
                        if progress.first_token_at is None:
                            progress.first_token_at = time.perf_counter()
                            span.first_chunk(progress.first_token_at)
                        progress.text_chars += len(result.text)
                        progress.text_deltas += 1
                        async with writing:
                            await context.write(voice_pb2.SpeakResponse(text=result.text))
                        for piece in segmenter.feed(result.text):
                            text.add(piece)
                    if result.finish_reason is not None:
                        text.add(segmenter.flush())
                        text.close(allow_empty=True)
                        span.finished(result)
                        return result
            raise AssertionError("GenerationClient.stream ended without a last result")  # it raises instead

        try:
            progress.last = await run_with_retries(
                attempt,
                policy=self._retry,
                classify=classify_generation,
                sent_anything=lambda: progress.text_deltas > 0,
                output="text",
                deadline=deadline,
            )
        except GaveUp as gave_up:
            raise HalfFailed(GENERATION, gave_up.failure) from gave_up
        first_token_ms = progress.ms_since_start(progress.first_token_at) if progress.first_token_at else None
        # Speak passes on the answer only (reasoning is not spoken): its first token is an answer token.
        self._generation_telemetry.done(params.model, progress.last, first_token_ms, first_token_ms)

    # -- speech ----------------------------------------------------------------------------------

    async def _speak(
        self,
        params: SynthesisParams,
        text: TextInput,
        context: Context,
        writing: asyncio.Lock,
        progress: _Progress,
        deadline: float | None,
    ) -> None:
        async def attempt(number: int) -> None:
            progress.speech_attempts = number
            # Borrow only once there is text: a run-task now would start the upstream's 23 s text gap
            # while the model may still be thinking.
            if await text.reader().next_batch() is None:
                return  # the model answered nothing: nothing to speak
            async with self._pool.lease(self._acquire_timeout(deadline)) as lease:
                task = SynthesisTask(params)
                progress.task = task
                task_started = time.perf_counter()
                async with (
                    self._speech_telemetry.task(task, number) as span,
                    contextlib.aclosing(lease.conn.run_stream(task, text.reader())) as audio_stream,
                ):
                    async for audio in audio_stream:
                        if progress.first_audio_at is None:
                            progress.first_audio_at = time.perf_counter()
                            span.first_packet(progress.first_audio_at - task_started)
                        progress.audio_bytes += len(audio)
                        progress.audio_chunks += 1
                        async with writing:
                            await context.write(voice_pb2.SpeakResponse(audio=audio))
                    span.finished(task, progress.audio_bytes, progress.audio_chunks)
                lease.mark_reusable()

        try:
            await run_with_retries(
                attempt,
                policy=self._speech_retry,
                classify=classify_voice_speech,
                # The text so far is kept and replayed, so only audio counts as sent.
                sent_anything=lambda: progress.audio_bytes > 0,
                output="audio",
                deadline=deadline,
            )
        except GaveUp as gave_up:
            raise HalfFailed(SPEECH, gave_up.failure) from gave_up

    def _acquire_timeout(self, deadline: float | None) -> float | None:
        if deadline is None:
            return self._pool.config.acquire_timeout_s
        remaining = deadline - asyncio.get_running_loop().time()
        return max(0.0, min(remaining, self._pool.config.acquire_timeout_s))

    # -- the end ---------------------------------------------------------------------------------

    async def _fail(self, context: Context, failed: HalfFailed, progress: _Progress) -> NoReturn:
        failure = failed.failure
        delivered = progress.text_chars > 0 or progress.audio_bytes > 0
        # After output, a retryable cause reads UNAVAILABLE (as Synthesize and GenerateStream do).
        code = grpc.StatusCode.UNAVAILABLE if delivered and failure.retryable else failure.code
        message = (
            f"{failed.half} failed: {failure.message}; delivered {progress.text_chars} characters of text"
            f" and {progress.audio_bytes} bytes of audio; the answer is incomplete"
        )
        log.warning("Speak failed: %s %s", code.name, message)
        context.set_trailing_metadata(
            (
                *failure.metadata,
                (MD_FAILED_HALF, failed.half),
                (MD_TEXT_CHARS_SENT, str(progress.text_chars)),
                (MD_AUDIO_BYTES_SENT, str(progress.audio_bytes)),
            )
        )
        await context.abort(code, message)

    def _summary(
        self, gen_params: GenerationParams, params: SynthesisParams, text: TextInput, progress: _Progress
    ) -> voice_pb2.SpeakSummary:
        last, task = progress.last, progress.task
        usage = last.usage if last is not None else Usage(0, 0, 0)
        return voice_pb2.SpeakSummary(
            time_to_first_token_ms=progress.ms_since_start(progress.first_token_at),
            time_to_first_audio_ms=progress.ms_since_start(progress.first_audio_at),
            usage=generation_pb2.Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
            ),
            characters=(task.characters or 0) if task is not None else 0,
            finish_reason=(last.finish_reason or "") if last is not None else "",
            model=gen_params.model,
            task_id=task.task_id if task is not None else "",
            request_id=last.request_id if last is not None else "",
            audio_bytes=progress.audio_bytes,
            text_chars=progress.text_chars,
            speech_pieces=text.received,
            format=WIRE_TO_FORMAT[params.format],
            sample_rate=params.sample_rate,
        )


async def _first_failure(halves: list[asyncio.Task[None]]) -> HalfFailed | None:
    """Wait for both halves; the first to fail for good, or None when both succeeded."""
    pending = set(halves)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            exc = task.exception()
            if isinstance(exc, HalfFailed):
                return exc
            if exc is not None:
                raise exc
    return None
