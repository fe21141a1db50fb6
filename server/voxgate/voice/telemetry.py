"""Spans and metrics of Speak: the pipeline's stages on the RPC's span, time to first audio.

The halves report through the generation and speech telemetry (a chat span per generation
attempt, a task span per synthesis task); this adds what only the whole call knows.
"""

from __future__ import annotations

from opentelemetry import trace

from voxgate.observability import names
from voxgate.observability.telemetry import Telemetry


class VoiceTelemetry:
    """What the Speak servicer reports; one per server."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._traces = telemetry.traces
        self._metrics = telemetry.metrics
        self._first_audio = telemetry.meter.create_histogram(
            names.METRIC_VOICE_FIRST_AUDIO,
            unit="ms",
            description="Speak: time from the RPC's arrival to the first audio in voxgate's hands",
        )

    def done(
        self,
        *,
        model: str,
        time_to_first_token_ms: float | None,
        time_to_first_audio_ms: float | None,
        pieces: int,
        failed_half: str | None,
    ) -> None:
        """The call ends, well or (``failed_half``) not."""
        if self._metrics and time_to_first_audio_ms is not None:
            self._first_audio.record(time_to_first_audio_ms, {names.GEN_AI_REQUEST_MODEL: model})
        if not self._traces:
            return
        span = trace.get_current_span()
        span.set_attribute(names.TTS_TEXT_PIECES, pieces)
        if time_to_first_token_ms is not None:
            span.set_attribute(names.VOICE_TIME_TO_FIRST_TOKEN_MS, time_to_first_token_ms)
        if time_to_first_audio_ms is not None:
            span.set_attribute(names.VOICE_TIME_TO_FIRST_AUDIO_MS, time_to_first_audio_ms)
        if failed_half is not None:
            span.set_attribute(names.VOICE_FAILED_HALF, failed_half)
