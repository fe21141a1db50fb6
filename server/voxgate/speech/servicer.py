"""The SpeechService servicer: validate, borrow, stream, summarise, map errors.

No socket code lives here; the pool lends :class:`~voxgate.speech.connection.Synthesizer`
connections, :mod:`voxgate.speech.errors` decides every status code and
:mod:`voxgate.rpc.retry` every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from voxgate.pool import Lease, Pool, PoolTimeout
from voxgate.rpc.admission import REFUSED_POOL_BUSY, REFUSED_TASK_START_RATE, Overload
from voxgate.rpc.errors import MD_AUDIO_BYTES_SENT, Failure, classifier
from voxgate.rpc.retry import GaveUp, RetryPolicy, deadline_of, run_with_retries
from voxgate.rpc.shutdown import SHUTTING_DOWN_NOW
from voxgate.rpc.stall import WriteGuard, WriteStalled
from voxgate.speech import coalesce
from voxgate.speech.connection import Synthesizer
from voxgate.speech.errors import classify_speech, speech_failure
from voxgate.speech.protocol import SynthesisParams, SynthesisTask
from voxgate.speech.ratelimit import RateLimited, TaskStartLimiter
from voxgate.speech.salvage import Salvager
from voxgate.speech.telemetry import SpeechTelemetry
from voxgate.speech.text_input import InputRejected, TextInput, input_failure
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate.speech.validation import (
    WIRE_TO_FORMAT,
    Defaults,
    InvalidRequest,
    stream_params,
    synthesis_params,
)

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, speech_pb2.SynthesizeResponse]
"""Synthesize's and SynthesizeStream's: both answer with SynthesizeResponse."""
StreamContext = grpc.aio.ServicerContext[speech_pb2.SynthesizeStreamRequest, speech_pb2.SynthesizeResponse]

classify_stream = classifier(input_failure, speech_failure)
"""SynthesizeStream's classifier: the caller's input first, then the synthesis path."""

RETRY_BACKOFF_INITIAL_S = 0.05
"""Shorter than generation's: a fresh pooled connection is usually one borrow away."""
RETRY_BACKOFF_MAX_S = 1.0


@dataclass(slots=True)
class _Progress:
    """What one RPC has done so far, across attempts."""

    rpc_started: float
    attempts: int = 0
    audio_bytes: int = 0
    audio_chunks: int = 0
    first_packet_at: float | None = None

    @property
    def first_packet_ms(self) -> float | None:
        """Milliseconds from the RPC's arrival to the first audio, once there was some."""
        if self.first_packet_at is None:
            return None
        return (self.first_packet_at - self.rpc_started) * 1000


class SpeechService(speech_pb2_grpc.SpeechServiceServicer):
    """Serves ``voxgate.speech.v1.SpeechService`` from a pool of synthesizers."""

    def __init__(
        self,
        pool: Pool[Synthesizer],
        defaults: Defaults,
        *,
        max_attempts: int,
        telemetry: SpeechTelemetry,
        overload: Overload | None = None,
        write_stall_timeout_s: float = 0.0,
        salvager: Salvager | None = None,
        task_starts: TaskStartLimiter | None = None,
        stream_idle_timeout_s: float = 20.0,
        stream_max_pieces: int = 10_000,
    ) -> None:
        self._pool = pool
        self._overload = overload if overload is not None else Overload()
        self._write_stall_timeout_s = write_stall_timeout_s
        self._salvager = salvager
        self._task_starts = task_starts
        self._defaults = defaults
        self._retry = RetryPolicy(
            max_attempts, initial_backoff_s=RETRY_BACKOFF_INITIAL_S, max_backoff_s=RETRY_BACKOFF_MAX_S
        )
        self._telemetry = telemetry
        self.retry_policy = self._retry
        self.telemetry = telemetry
        self._stream_idle_timeout_s = stream_idle_timeout_s
        self._stream_max_pieces = stream_max_pieces
        self.draining = False
        self.cutting: Callable[[], bool] = lambda: False
        """True in a call that the end of a drain is cutting (voxgate.rpc.shutdown.InFlight)."""

    async def Synthesize(  # type: ignore[override]  # writes with context.write (see below)
        self,
        request: speech_pb2.SynthesizeRequest,
        context: Context,
    ) -> None:
        # A coroutine with context.write() rather than an async generator: a client
        # cancel then raises CancelledError right here, so the lease is dropped at once
        # instead of whenever the abandoned generator is finalised.
        progress = _Progress(rpc_started=time.perf_counter())
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance"
            )
        try:
            params = synthesis_params(request, self._defaults)
            min_chunk_bytes = coalesce.min_chunk_bytes(request, params)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        await self._serve(params, request.text, context, progress, classify_speech, min_chunk_bytes)

    async def SynthesizeStream(  # type: ignore[override]  # writes with context.write, as Synthesize
        self,
        request_iterator: AsyncIterator[speech_pb2.SynthesizeStreamRequest],
        context: StreamContext,
    ) -> None:
        progress = _Progress(rpc_started=time.perf_counter())
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance"
            )
        text = TextInput(
            idle_timeout_s=self._stream_idle_timeout_s,
            max_pieces=self._stream_max_pieces,
            idle_hint="VOXGATE_STREAM_IDLE_TIMEOUT_S",
        )
        first = await _first_message(request_iterator, self._stream_idle_timeout_s)
        if isinstance(first, InputRejected):
            await context.abort(first.failure.code, first.failure.message)
        try:
            params = stream_params(first.config, self._defaults)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        reader = asyncio.create_task(_read_pieces(request_iterator, text), name="voxgate-stream-reader")
        try:
            # All text received is kept and replayed, so only audio counts as sent (as for Synthesize).
            await self._serve(params, text, context, progress, classify_stream)
        finally:
            reader.cancel()

    async def _serve(
        self,
        params: SynthesisParams,
        text: str | TextInput,
        context: Context,
        progress: _Progress,
        classify: Callable[[BaseException], Failure],
        min_chunk_bytes: int | None = None,
    ) -> None:
        """Run the attempts, stream their audio, then the summary; or end the call with why not."""
        text_input = text if isinstance(text, TextInput) else None
        with WriteGuard(self._write_stall_timeout_s) as guard:
            try:
                summary = await run_with_retries(
                    lambda attempt: self._attempt(
                        params, text, context, guard, progress, attempt, min_chunk_bytes
                    ),
                    policy=self._retry,
                    classify=classify,
                    sent_anything=lambda: progress.audio_bytes > 0,
                    output="audio",
                    deadline=deadline_of(context),
                )
            except GaveUp as gave_up:
                self._done(params, progress, text_input)
                self._count_overload(gave_up)
                await self._fail(context, gave_up.failure, progress)
            except asyncio.CancelledError:
                if not self.cutting():
                    raise  # the caller went away: nobody to answer
                # The drain's end: say how much audio the caller got, as for any interruption.
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                self._done(params, progress, text_input)
                await self._fail(
                    context, Failure(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN_NOW, retryable=True), progress
                )
            self._done(params, progress, text_input)
            if text_input is not None:
                summary.text_pieces = text_input.received
                if text_input.first_piece_at is not None and progress.first_packet_at is not None:
                    summary.text_to_first_audio_ms = (
                        progress.first_packet_at - text_input.first_piece_at
                    ) * 1000
            guard.on_stall = lambda: self._stalled(None)  # the lease is back already: only counted
            try:
                await guard.write(context.write(speech_pb2.SynthesizeResponse(summary=summary)))
            except WriteStalled as exc:
                await self._fail(context, classify_speech(exc), progress)

    async def _attempt(
        self,
        params: SynthesisParams,
        text: str | TextInput,
        context: Context,
        guard: WriteGuard,
        progress: _Progress,
        attempt: int,
        min_chunk_bytes: int | None = None,
    ) -> speech_pb2.SynthesisSummary:
        progress.attempts = attempt
        lease: Lease[Synthesizer] | None = await self._pool.acquire(self._acquire_timeout(context))
        assert lease is not None
        task = SynthesisTask(params)
        # A stalled write frees the connection at once (closed: see below), not when it completes.
        guard.on_stall = lambda: self._stalled(lease)
        try:
            if self._task_starts is not None:
                await self._task_starts.take(self._acquire_timeout(context))
            task_started = time.perf_counter()
            upstream_first_packet_s = 0.0
            # aclosing: if a write is cancelled, the upstream reader ends now, not at GC.
            async with (
                self._telemetry.task(task, progress.attempts) as span,
                contextlib.aclosing(
                    coalesce.coalesced(
                        lease.conn.run(task, text)
                        if isinstance(text, str)
                        else lease.conn.run_stream(task, text.reader()),
                        min_chunk_bytes,
                    )
                ) as audio_stream,
            ):
                async for audio in audio_stream:
                    if progress.first_packet_at is None:
                        progress.first_packet_at = time.perf_counter()
                        upstream_first_packet_s = progress.first_packet_at - task_started
                        span.first_packet(upstream_first_packet_s)
                    progress.audio_bytes += len(audio)
                    progress.audio_chunks += 1
                    await guard.write(context.write(speech_pb2.SynthesizeResponse(audio=audio)))
                # Retries happen only before any audio: all of it came from this attempt.
                span.finished(task, progress.audio_bytes, progress.audio_chunks)
            # task-finished arrived: the connection is clean and goes back as we leave.
            lease.mark_reusable()
            return self._summary(params, task, lease, progress, upstream_first_packet_s)
        except asyncio.CancelledError:
            # The caller went away (cancel, deadline) mid-task: read the task to its end in the
            # background instead of closing the socket (speech/salvage.py). Not after a stalled
            # write: buffers full of audio mean a long task is left, and salvaging it would hold
            # the connection that the stall limit is there to free; it is closed.
            if not guard.expired and self._salvager is not None and self._salvager.adopt(lease, task):
                lease = None
            raise
        finally:
            guard.on_stall = None
            if lease is not None:
                self._pool.release(lease)

    def _stalled(self, lease: Lease[Synthesizer] | None) -> None:
        self._overload.count("writes_stalled")
        if lease is not None:
            self._pool.release(lease)

    def _count_overload(self, gave_up: GaveUp) -> None:
        cause = gave_up.__cause__
        if isinstance(cause, PoolTimeout):
            self._overload.refuse(REFUSED_POOL_BUSY, str(cause))
        elif isinstance(cause, RateLimited):
            self._overload.refuse(REFUSED_TASK_START_RATE, str(cause))

    def _done(self, params: SynthesisParams, progress: _Progress, text: TextInput | None = None) -> None:
        text_to_first_audio_ms = None
        if text is not None and text.first_piece_at is not None and progress.first_packet_at is not None:
            text_to_first_audio_ms = (progress.first_packet_at - text.first_piece_at) * 1000
        self._telemetry.done(
            model=params.model,
            attempts=progress.attempts,
            audio_bytes=progress.audio_bytes,
            first_packet_ms=progress.first_packet_ms,
            text_pieces=None if text is None else text.received,
            text_to_first_audio_ms=text_to_first_audio_ms,
        )

    def _acquire_timeout(self, context: Context) -> float | None:
        remaining = _time_remaining(context)
        if remaining is None:
            return None
        return min(remaining, self._pool.config.acquire_timeout_s)

    async def _fail(
        self,
        context: Context,
        failure: Failure,
        progress: _Progress,
    ) -> NoReturn:
        code, message = failure.code, failure.message
        if progress.audio_bytes:
            # Never a silent short clip: say what was delivered before the break.
            code = grpc.StatusCode.UNAVAILABLE if failure.retryable else failure.code
            message = (
                f"audio stream interrupted after {progress.audio_bytes} bytes in"
                f" {progress.audio_chunks} chunks; the clip is incomplete: {failure.message}"
            )
        elif progress.attempts > 1:
            message = f"{message} (after {progress.attempts} attempts)"
        log.warning("Synthesize failed: %s %s", code.name, message)
        context.set_trailing_metadata((*failure.metadata, (MD_AUDIO_BYTES_SENT, str(progress.audio_bytes))))
        await context.abort(code, message)

    def _summary(
        self,
        params: SynthesisParams,
        task: SynthesisTask,
        lease: Lease[Synthesizer],
        progress: _Progress,
        upstream_first_packet_s: float,
    ) -> speech_pb2.SynthesisSummary:
        return speech_pb2.SynthesisSummary(
            task_id=task.task_id,
            request_id=task.request_id,
            first_packet_delay_ms=progress.first_packet_ms or 0.0,
            upstream_first_packet_delay_ms=upstream_first_packet_s * 1000,
            pool_wait_ms=lease.wait_s * 1000,
            connection_reused=lease.reused,
            connection_age_ms=lease.age_s * 1000,
            characters=task.characters or 0,
            audio_bytes=progress.audio_bytes,
            audio_chunks=progress.audio_chunks,
            attempts=progress.attempts,
            format=WIRE_TO_FORMAT[params.format],
            sample_rate=params.sample_rate,
        )


async def _first_message(
    requests: AsyncIterator[speech_pb2.SynthesizeStreamRequest], timeout_s: float
) -> speech_pb2.SynthesizeStreamRequest | InputRejected:
    """The stream's first message, which must carry ``config``; else why the call fails."""
    try:
        async with asyncio.timeout(timeout_s):
            first = await anext(aiter(requests), None)
    except TimeoutError:
        return InputRejected(grpc.StatusCode.OUT_OF_RANGE, f"config: no first message within {timeout_s:g}s")
    if first is None or first.WhichOneof("kind") != "config":
        return InputRejected(grpc.StatusCode.INVALID_ARGUMENT, "config: the first message must carry config")
    return first


async def _read_pieces(requests: AsyncIterator[speech_pb2.SynthesizeStreamRequest], text: TextInput) -> None:
    """Feed the caller's text pieces into ``text`` until the caller closes its side."""
    try:
        async for request in requests:
            if request.WhichOneof("kind") != "text":
                text.fail(
                    InputRejected(
                        grpc.StatusCode.INVALID_ARGUMENT, "config: only the first message may carry config"
                    )
                )
                return
            text.add(request.text)
            if text.error is not None:
                return
    except Exception as exc:  # the call is ending; say so to the attempt
        text.fail(InputRejected(grpc.StatusCode.CANCELLED, f"request stream broke: {type(exc).__name__}"))
        return
    text.close()


def _time_remaining(context: Context) -> float | None:
    """Seconds to the caller's deadline; None without one (the stubs say float, grpc says None)."""
    remaining: float | None = context.time_remaining()
    return remaining
