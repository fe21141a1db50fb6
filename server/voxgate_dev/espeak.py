"""Real speech from espeak-ng, through ctypes, on one worker thread.

The library and its voice data come from the PyPI package ``espeakng-loader``. espeak-ng
keeps global state and is not thread-safe, so the whole process shares ONE engine
(:func:`get_engine`) whose synthesis runs on ONE dedicated thread; the event loop only
awaits it. Results are cached (LRU, bounded in bytes), so repeated benchmark texts cost
a dictionary lookup.

Callers build a :class:`Voice` and ``await get_engine().synthesize(text, voice, sample_rate)``,
which returns 16-bit little-endian mono PCM at ``sample_rate``.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import espeakng_loader
import numpy as np

NATIVE_SAMPLE_RATE = 22050
"""espeak-ng's output rate; everything else is resampled from it."""

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 0x1
_SSML = 0x10
_ENDPAUSE = 0x1000
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_EE_OK = 0

_DEFAULT_WPM = 175
_MIN_WPM, _MAX_WPM = 80, 450
_CACHE_BYTES = 64 * 1024 * 1024

# int callback(short *wav, int numsamples, espeak_EVENT *events); return 1 aborts.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechError(RuntimeError):
    """espeak-ng refused a call; the message names the call and its return code."""


@dataclass(frozen=True, slots=True)
class Voice:
    """espeak voice and prosody of one task, already mapped from CosyVoice parameters."""

    name: str = "en-us"
    """espeak voice name, optionally with a variant (``en-us+f3``)."""
    rate: float = 1.0
    """CosyVoice ``rate`` (0.5-2.0): a multiple of espeak's default 175 words per minute."""
    pitch: float = 1.0
    """CosyVoice ``pitch`` (0.5-2.0): a multiple of espeak's neutral pitch 50."""
    volume: int = 50
    """CosyVoice ``volume`` (0-100, default 50): 50 maps to espeak's normal volume 100."""
    ssml: bool = False
    """Let espeak interpret SSML tags in the text."""

    def espeak_rate_wpm(self) -> int:
        return int(min(_MAX_WPM, max(_MIN_WPM, round(self.rate * _DEFAULT_WPM))))

    def espeak_pitch(self) -> int:
        return int(min(100, max(0, round(self.pitch * 50))))

    def espeak_volume(self) -> int:
        return int(min(200, max(0, self.volume * 2)))


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Linear-interpolation resampling of 16-bit mono PCM (good enough for a dev upstream)."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = max(1, round(len(samples) * to_rate / from_rate))
    positions = np.arange(count) * (from_rate / to_rate)
    out = np.interp(positions, np.arange(len(samples)), samples)
    return bytes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())


class _Espeak:
    """The ctypes binding. Every method must run on the engine's single worker thread."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if sample_rate != NATIVE_SAMPLE_RATE:
            raise SpeechError(f"espeak_Initialize returned {sample_rate}, expected {NATIVE_SAMPLE_RATE} Hz")
        self._lib = lib
        self._buffer = bytearray()
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None) -> int:
        if wav and count > 0:
            self._buffer += ctypes.string_at(wav, count * 2)
        return 0

    def synthesize(self, text: str, voice: Voice) -> bytes:
        self._check("espeak_SetVoiceByName", self._lib.espeak_SetVoiceByName(voice.name.encode()))
        self._check(
            "espeak_SetParameter(rate)",
            self._lib.espeak_SetParameter(_PARAM_RATE, voice.espeak_rate_wpm(), 0),
        )
        self._check(
            "espeak_SetParameter(pitch)", self._lib.espeak_SetParameter(_PARAM_PITCH, voice.espeak_pitch(), 0)
        )
        self._check(
            "espeak_SetParameter(volume)",
            self._lib.espeak_SetParameter(_PARAM_VOLUME, voice.espeak_volume(), 0),
        )
        data = text.encode() + b"\0"
        flags = _CHARS_UTF8 | _ENDPAUSE | (_SSML if voice.ssml else 0)
        self._buffer = bytearray()
        self._check(
            "espeak_Synth", self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        )
        return bytes(self._buffer)

    @staticmethod
    def _check(call: str, code: int) -> None:
        if code != _EE_OK:
            raise SpeechError(f"{call} failed with code {code}")


class SpeechEngine:
    """Process-wide speech synthesis; obtain it with :func:`get_engine`."""

    def __init__(self, *, cache_bytes: int = _CACHE_BYTES) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxgate-espeak")
        self._espeak: _Espeak | None = None
        self._cache: OrderedDict[tuple[str, Voice, int], bytes] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        # Upstreams in several threads (each with its own loop) may share this engine.
        self._cache_lock = threading.Lock()

    async def synthesize(self, text: str, voice: Voice, sample_rate: int) -> bytes:
        """16-bit LE mono PCM of ``text`` at ``sample_rate``. Never blocks the event loop."""
        key = (text, voice, sample_rate)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        loop = asyncio.get_running_loop()
        pcm = await loop.run_in_executor(self._executor, self._synthesize_blocking, text, voice, sample_rate)
        self._remember(key, pcm)
        return pcm

    def _synthesize_blocking(self, text: str, voice: Voice, sample_rate: int) -> bytes:
        if self._espeak is None:
            self._espeak = _Espeak()
        native = self._espeak.synthesize(text, voice)
        return resample(native, NATIVE_SAMPLE_RATE, sample_rate)

    def _remember(self, key: tuple[str, Voice, int], pcm: bytes) -> None:
        with self._cache_lock:
            if key in self._cache or len(pcm) > self._cache_limit:
                return
            self._cache[key] = pcm
            self._cache_bytes += len(pcm)
            while self._cache_bytes > self._cache_limit:
                _, evicted = self._cache.popitem(last=False)
                self._cache_bytes -= len(evicted)


_engine: SpeechEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> SpeechEngine:
    """The one engine of this process (espeak-ng state is global, so there can be only one)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = SpeechEngine()
        return _engine
