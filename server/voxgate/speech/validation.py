"""Checks a SynthesizeRequest and resolves its defaults, before any upstream work.

Limits are the service's documented ones (docs/protocol.md#run-task, #text-limits), so a request
we accept is one DashScope would accept too, and a bad one fails fast with a
message naming the field instead of costing an upstream round trip.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from voxgate.rpc.errors import echo
from voxgate.speech.protocol import (
    MAX_TEXT_CHARS_PER_CONTINUE,
    OPUS_SAMPLE_RATES,
    SAMPLE_RATES,
    SynthesisParams,
    weighted_length,
)
from voxgate.speech.v1 import speech_pb2

WIRE_TO_FORMAT = {
    "pcm": speech_pb2.AUDIO_FORMAT_PCM,
    "wav": speech_pb2.AUDIO_FORMAT_WAV,
    "mp3": speech_pb2.AUDIO_FORMAT_MP3,
    "opus": speech_pb2.AUDIO_FORMAT_OPUS,
}
"""Upstream format names and their AudioFormat values; the one table of formats."""
_FORMATS = {value: name for name, value in WIRE_TO_FORMAT.items()} | {
    speech_pb2.AUDIO_FORMAT_UNSPECIFIED: "wav"
}
DEFAULT_SAMPLE_RATE = 22050
DEFAULT_OPUS_SAMPLE_RATE = 48000
MAX_INSTRUCTION_CHARS = 100
MAX_LANGUAGE_HINTS = 8
"""The service reads only the first hint (docs/protocol.md#run-task); a few are tolerated."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidRequest(ValueError):
    """A request field is invalid; ``field`` names it, the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Defaults:
    model: str
    voice: str


_Parameters = speech_pb2.SynthesizeRequest | speech_pb2.SynthesisConfig
"""SynthesisConfig is SynthesizeRequest without ``text``: same fields, same checks."""


def synthesis_params(request: speech_pb2.SynthesizeRequest, defaults: Defaults) -> SynthesisParams:
    """Validate ``request`` and return the upstream parameters. Raises :class:`InvalidRequest`."""
    _check_text(request.text)
    return _params(request, defaults)


def stream_params(
    config: speech_pb2.SynthesisConfig, defaults: Defaults, *, field: str = "config"
) -> SynthesisParams:
    """Validate a SynthesisConfig sent as ``field`` (error field names are prefixed with it).

    SSML is refused: the upstream accepts only one continue-task per SSML task
    (docs/protocol.md#run-task), and a stream sends one per piece."""
    try:
        if config.enable_ssml:
            raise InvalidRequest(
                "enable_ssml", "is not supported in a stream (SSML must arrive whole: use Synthesize)"
            )
        return _params(config, defaults)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{field}.{exc.field}", str(exc).partition(": ")[2]) from None


def _params(request: _Parameters, defaults: Defaults) -> SynthesisParams:
    fmt = _FORMATS.get(request.format)
    if fmt is None:
        raise InvalidRequest("format", f"unknown AudioFormat value {request.format}")
    return SynthesisParams(
        model=check_name("model", request.model or defaults.model),
        voice=check_name("voice", request.voice or defaults.voice),
        format=fmt,
        sample_rate=_sample_rate(request.sample_rate, fmt),
        volume=_int_in("volume", request.volume, 0, 100) if request.HasField("volume") else 50,
        rate=_float_in("rate", request.rate, 0.5, 2.0) if request.HasField("rate") else 1.0,
        pitch=_float_in("pitch", request.pitch, 0.5, 2.0) if request.HasField("pitch") else 1.0,
        seed=_int_in("seed", request.seed, 0, 65535) if request.HasField("seed") else 0,
        bit_rate=_bit_rate(request, fmt),
        enable_ssml=request.enable_ssml,
        instruction=_instruction(request.instruction),
        language_hints=_language_hints(list(request.language_hints)),
        word_timestamp_enabled=request.word_timestamp_enabled,
        enable_markdown_filter=request.enable_markdown_filter,
    )


def _check_text(text: str) -> None:
    # Length before weight: every character weighs at least 1, so a text longer than the limit
    # is refused without weighing it (weighing 4 MB takes the event loop most of a second).
    if len(text) > MAX_TEXT_CHARS_PER_CONTINUE:
        raise InvalidRequest(
            "text",
            f"{len(text)} characters exceeds the limit of {MAX_TEXT_CHARS_PER_CONTINUE} per request",
        )
    if not text.strip():
        raise InvalidRequest("text", "must not be empty")
    length = weighted_length(text)
    if length > MAX_TEXT_CHARS_PER_CONTINUE:
        raise InvalidRequest(
            "text",
            f"{length} characters exceeds the limit of {MAX_TEXT_CHARS_PER_CONTINUE} per request"
            " (CJK ideographs count 2)",
        )


def check_name(field: str, value: str) -> str:
    """``value`` if it is a plausible model/voice name; else :class:`InvalidRequest` naming ``field``."""
    if not _NAME.match(value):
        raise InvalidRequest(field, f"{echo(value)} is not a valid name (letters, digits, '.', '_', '-')")
    return value


def _sample_rate(rate: int, fmt: str) -> int:
    if fmt == "opus":
        if rate == 0:
            return DEFAULT_OPUS_SAMPLE_RATE
        if rate not in OPUS_SAMPLE_RATES:
            raise InvalidRequest(
                "sample_rate", f"{rate} Hz is not supported for opus; use one of {OPUS_SAMPLE_RATES}"
            )
        return rate
    if rate == 0:
        return DEFAULT_SAMPLE_RATE
    if rate not in SAMPLE_RATES:
        raise InvalidRequest("sample_rate", f"{rate} Hz is not supported; use one of {SAMPLE_RATES}")
    return rate


def _int_in(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidRequest(field, f"{value} is outside [{low}, {high}]")
    return value


def _float_in(field: str, value: float, low: float, high: float) -> float:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidRequest(field, f"{value} is outside [{low}, {high}]")
    return round(value, 4)  # float32 on the wire: 1.2 arrives as 1.2000000476837158


def _bit_rate(request: _Parameters, fmt: str) -> int | None:
    if not request.HasField("bit_rate"):
        return None
    if fmt != "opus":
        raise InvalidRequest("bit_rate", "is only valid with AUDIO_FORMAT_OPUS")
    return _int_in("bit_rate", request.bit_rate, 6, 510)


def _instruction(instruction: str) -> str:
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise InvalidRequest(
            "instruction", f"{len(instruction)} characters exceeds the limit of {MAX_INSTRUCTION_CHARS}"
        )
    return instruction


def _language_hints(hints: list[str]) -> tuple[str, ...]:
    if len(hints) > MAX_LANGUAGE_HINTS:
        raise InvalidRequest(
            "language_hints", f"{len(hints)} entries exceeds the limit of {MAX_LANGUAGE_HINTS}"
        )
    for index, hint in enumerate(hints):
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", hint):
            raise InvalidRequest(
                f"language_hints[{index}]", f"{echo(hint)} is not a language tag like 'en' or 'zh'"
            )
    return tuple(hints)
