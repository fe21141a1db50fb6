"""The SpeechService servicer: validate, borrow, stream, summarise, map errors.

No socket code lives here; the pool lends :class:`~voxgate.speech.connection.Synthesizer`
connections, :mod:`voxgate.speech.errors` decides every status code and
:mod:`voxgate.rpc.retry` every retry.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import NoReturn

import grpc

from voxgate.pool import Lease, Pool
from voxgate.rpc.errors import MD_AUDIO_BYTES_SENT, Failure
from voxgate.rpc.retry import GaveUp, RetryPolicy, deadline_of, run_with_retries
from voxgate.speech import coalesce
from voxgate.speech.connection import Synthesizer
from voxgate.speech.errors import classify_speech
from voxgate.speech.protocol import SynthesisParams, SynthesisTask
from voxgate.speech.telemetry import SpeechTelemetry
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate.speech.validation import WIRE_TO_FORMAT, Defaults, InvalidRequest, synthesis_params

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[speech_pb2.SynthesizeRequest, speech_pb2.SynthesizeResponse]

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
    ) -> None:
        self._pool = pool
        self._defaults = defaults
        self._retry = RetryPolicy(
            max_attempts, initial_backoff_s=RETRY_BACKOFF_INITIAL_S, max_backoff_s=RETRY_BACKOFF_MAX_S
        )
        self._telemetry = telemetry
        self.draining = False

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

        try:
            summary = await run_with_retries(
                lambda attempt: self._attempt(
                    params, request.text, context, progress, attempt, min_chunk_bytes
                ),
                policy=self._retry,
                classify=classify_speech,
                sent_anything=lambda: progress.audio_bytes > 0,
                output="audio",
                deadline=deadline_of(context),
            )
        except GaveUp as gave_up:
            self._done(params, progress)
            await self._fail(context, gave_up.failure, progress)
        self._done(params, progress)
        await context.write(speech_pb2.SynthesizeResponse(summary=summary))

    async def _attempt(
        self,
        params: SynthesisParams,
        text: str,
        context: Context,
        progress: _Progress,
        attempt: int,
        min_chunk_bytes: int | None = None,
    ) -> speech_pb2.SynthesisSummary:
        progress.attempts = attempt
        async with self._pool.lease(self._acquire_timeout(context)) as lease:
            task = SynthesisTask(params)
            task_started = time.perf_counter()
            upstream_first_packet_s = 0.0
            # aclosing: if a write is cancelled, the upstream reader ends now, not at GC.
            async with (
                self._telemetry.task(task, progress.attempts) as span,
                contextlib.aclosing(
                    coalesce.coalesced(lease.conn.run(task, text), min_chunk_bytes)
                ) as audio_stream,
            ):
                async for audio in audio_stream:
                    if progress.first_packet_at is None:
                        progress.first_packet_at = time.perf_counter()
                        upstream_first_packet_s = progress.first_packet_at - task_started
                        span.first_packet(upstream_first_packet_s)
                    progress.audio_bytes += len(audio)
                    progress.audio_chunks += 1
                    await context.write(speech_pb2.SynthesizeResponse(audio=audio))
                # Retries happen only before any audio: all of it came from this attempt.
                span.finished(task, progress.audio_bytes, progress.audio_chunks)
            # task-finished arrived: the connection is clean and goes back as we leave.
            lease.mark_reusable()
        return self._summary(params, task, lease, progress, upstream_first_packet_s)

    def _done(self, params: SynthesisParams, progress: _Progress) -> None:
        self._telemetry.done(
            model=params.model,
            attempts=progress.attempts,
            audio_bytes=progress.audio_bytes,
            first_packet_ms=progress.first_packet_ms,
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


def _time_remaining(context: Context) -> float | None:
    """Seconds to the caller's deadline; None without one (the stubs say float, grpc says None)."""
    remaining: float | None = context.time_remaining()
    return remaining
