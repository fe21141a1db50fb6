"""Validation of a run-task's payload into a :class:`TaskSpec` (no I/O).

The session calls :func:`parse_run_task` and, on :class:`RequestError`, answers
task-failed with the error's code and message, then closes (docs/protocol.md#task-failed). Messages are
the vendor's where docs/protocol.md#error-strings lists one; the rest are marked [GUESS].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from voxgate.speech.protocol import ERROR_INVALID_VOICE, FORMATS, OPUS_SAMPLE_RATES, SAMPLE_RATES

from .espeak import Voice
from .text import espeak_language, is_ssml

CODE_INVALID_PARAMETER = "InvalidParameter"
ERROR_MISSING_INPUT = "Missing required parameter 'payload.input'! Please follow the protocol!"
ERROR_MISSING_MODEL = "Missing required parameter 'payload.model'! Please follow the protocol!"
ERROR_UNKNOWN_VOICE = "[tts:]Engine return error code: 418"
ERROR_UNKNOWN_MODEL = "Model not exist."  # [GUESS] DashScope's usual text for an unknown model

DEFAULT_FORMAT = "mp3"
DEFAULT_SAMPLE_RATE = 22050
"""Documented defaults (docs/protocol.md#run-task); also what the SDK's ``AudioFormat.DEFAULT``
("Default", 0) means here [GUESS]."""

MODEL_PREFIX = "cosyvoice-"
TEST_VOICE_PREFIX = "loop-"
"""Voices with this prefix are accepted too, so tests can name voices freely."""

# A documented subset of CosyVoice system voices (docs/protocol.md#run-task) and whether they are female; the
# flag only picks espeak's female variant, for a little audible variety.
KNOWN_VOICES: Mapping[str, bool] = {
    "longanyang": False,
    "longanhuan": True,
    "longxiaochun": True,
    "longanling_v3": True,
    "longyingtao_v3": True,
    "longxiaochun_v2": True,
    "longwan_v2": True,
}
_FEMALE_VARIANT = "+f3"


class RequestError(Exception):
    """The run-task is invalid; answer task-failed with ``code``/``message`` and close."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _invalid(message: str) -> RequestError:
    return RequestError(CODE_INVALID_PARAMETER, message)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A validated run-task."""

    model: str
    voice: str
    audio_format: str
    sample_rate: int
    volume: int = 50
    rate: float = 1.0
    pitch: float = 1.0
    enable_ssml: bool = False
    language_hints: tuple[str, ...] = ()

    def espeak_voice(self, text: str) -> Voice:
        """The espeak voice for one sentence: language from hints or script, variant from the voice."""
        name = espeak_language(text, self.language_hints)
        if KNOWN_VOICES.get(self.voice, False):
            name += _FEMALE_VARIANT
        return Voice(
            name=name,
            rate=self.rate,
            pitch=self.pitch,
            volume=self.volume,
            ssml=self.enable_ssml and is_ssml(text),
        )


def parse_run_task(payload: Mapping[str, Any]) -> TaskSpec:
    """Validate a run-task payload; raises :class:`RequestError` like the vendor would."""
    if not isinstance(payload.get("input"), Mapping):
        raise _invalid(ERROR_MISSING_INPUT)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid(ERROR_MISSING_MODEL)
    if not model.startswith(MODEL_PREFIX):
        raise _invalid(ERROR_UNKNOWN_MODEL)
    parameters = payload.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise _invalid("payload.parameters must be an object")  # [GUESS]

    voice = parameters.get("voice")
    if not isinstance(voice, str) or not voice:
        raise _invalid(ERROR_INVALID_VOICE)
    if voice not in KNOWN_VOICES and not voice.startswith(TEST_VOICE_PREFIX):
        raise _invalid(ERROR_UNKNOWN_VOICE)

    audio_format, sample_rate = _format_and_rate(parameters)
    return TaskSpec(
        model=model,
        voice=voice,
        audio_format=audio_format,
        sample_rate=sample_rate,
        volume=int(_number(parameters, "volume", 50, 0, 100, integer=True)),
        rate=float(_number(parameters, "rate", 1.0, 0.5, 2.0)),
        pitch=float(_number(parameters, "pitch", 1.0, 0.5, 2.0)),
        enable_ssml=parameters.get("enable_ssml") is True,
        language_hints=_language_hints(parameters.get("language_hints")),
    )


def _format_and_rate(parameters: Mapping[str, Any]) -> tuple[str, int]:
    audio_format = parameters.get("format", DEFAULT_FORMAT)
    sample_rate = parameters.get("sample_rate", DEFAULT_SAMPLE_RATE)
    if isinstance(audio_format, str) and audio_format.lower() == "default":
        # The SDK sends AudioFormat.DEFAULT verbatim: "format": "Default", "sample_rate": 0
        # (docs/protocol.md#run-task).
        audio_format = DEFAULT_FORMAT
        if sample_rate in (0, None):
            sample_rate = DEFAULT_SAMPLE_RATE
    if not isinstance(audio_format, str) or audio_format not in FORMATS:
        raise _invalid(f"format {audio_format!r} is invalid, expected one of {', '.join(FORMATS)}")  # [GUESS]
    rates_allowed = OPUS_SAMPLE_RATES if audio_format == "opus" else SAMPLE_RATES
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate not in rates_allowed:
        rates = ", ".join(str(r) for r in rates_allowed)
        raise _invalid(f"sample_rate {sample_rate!r} is invalid, expected one of {rates}")  # [GUESS]
    return audio_format, sample_rate


def _number(
    parameters: Mapping[str, Any],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    integer: bool = False,
) -> float:
    value = parameters.get(name, default)
    kinds: tuple[type[int] | type[float], ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise _invalid(
            f"{name} {value!r} is invalid, expected a number within [{low:g}, {high:g}]"
        )  # [GUESS]
    return value


def _language_hints(value: object) -> tuple[str, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(str(item) for item in value)
    return ()
