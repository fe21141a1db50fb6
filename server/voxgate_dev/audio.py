"""Streaming audio encoders for the formats the local upstream sends: pcm, wav, mp3, opus.

One :class:`Encoder` lives for one task. For every sentence the caller feeds PCM chunks to
:meth:`Encoder.encode` and then calls :meth:`Encoder.end_sentence`, and at the task's end
:meth:`Encoder.finish`; every non-empty result becomes one binary frame. For wav/mp3/opus
only the first frame carries the header; later frames are bare audio
(docs/protocol.md#binary-audio-frames).
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

import lameenc
import numpy as np

MP3_BIT_RATE_KBPS = 128
"""The SDK's MP3 formats are 128 or 256 kbps (docs/protocol.md#binary-audio-frames); we always make 128."""
_MP3_QUALITY = 7  # LAME quality 0 (best, slow) .. 9 (fast); 7 is plenty for espeak voices.


class Encoder(Protocol):
    def encode(self, pcm: bytes) -> bytes:
        """Encoded bytes for this PCM chunk; may be empty (send no frame then)."""

    def end_sentence(self) -> bytes:
        """Bytes still held back at the end of a sentence; may be empty."""

    def finish(self) -> bytes:
        """The stream's last bytes, at the task's end; may be empty."""


def wav_header(sample_rate: int) -> bytes:
    """A 44-byte RIFF/WAVE header for 16-bit mono PCM of unknown length.

    The RIFF and data sizes are 0xFFFFFFFF because the stream length is unknown when the
    first frame goes out; what the service writes there is unknown
    (docs/protocol.md#binary-audio-frames).
    """
    channels, bits = 1, 16
    block_align = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, bits)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


class PcmEncoder:
    """16-bit little-endian mono PCM, passed through."""

    def encode(self, pcm: bytes) -> bytes:
        return pcm

    def end_sentence(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


class WavEncoder:
    """PCM whose first frame of the task carries a streaming WAV header."""

    def __init__(self, sample_rate: int) -> None:
        self._header: bytes | None = wav_header(sample_rate)

    def encode(self, pcm: bytes) -> bytes:
        if not pcm:
            return b""
        if self._header is None:
            return pcm
        header, self._header = self._header, None
        return header + pcm

    def end_sentence(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


class Mp3Encoder:
    """Real MP3 (LAME via ``lameenc``), mono, 128 kbps.

    Each sentence is its own MP3 stream, flushed at the sentence's end: LAME holds back up
    to a frame of audio until flushed, and a flushed encoder cannot go on. Concatenated
    MP3 streams are still one valid MP3 stream (frames are self-contained, no Xing tag).
    """

    def __init__(self, sample_rate: int) -> None:
        self._sample_rate = sample_rate
        self._lame: lameenc.Encoder | None = None

    def encode(self, pcm: bytes) -> bytes:
        if not pcm:
            return b""
        if self._lame is None:
            self._lame = self._new_lame()
        return bytes(self._lame.encode(pcm))

    def end_sentence(self) -> bytes:
        if self._lame is None:
            return b""
        lame, self._lame = self._lame, None
        return bytes(lame.flush())

    def finish(self) -> bytes:
        return b""

    def _new_lame(self) -> lameenc.Encoder:
        lame = lameenc.Encoder()
        lame.set_bit_rate(MP3_BIT_RATE_KBPS)
        lame.set_in_sample_rate(self._sample_rate)
        lame.set_channels(1)
        lame.set_quality(_MP3_QUALITY)
        return lame


OGG_PAGE_LATENCY_MS = 20.0
"""How much audio libsndfile may hold before it writes an Ogg page. Its default, 1000 ms,
would delay the first audio by a second; 20 ms is one Opus frame, so every chunk encoded
comes out as pages at once, at ~10 % more bytes of page headers."""
_SFC_SET_OGG_PAGE_LATENCY_MS = 0x1302  # sndfile.h; the soundfile package does not wrap it


class _Sink:
    """The file libsndfile writes the Ogg stream to: bytes are taken out as they arrive."""

    def __init__(self) -> None:
        self._written = bytearray()
        self._position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._written += chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._position  # a stream: libsndfile only asks where it is (its file length)

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        return b""

    def take(self) -> bytes:
        data, self._written = bytes(self._written), bytearray()
        return data


class OpusEncoder:
    """Real Ogg/Opus (libopus through libsndfile, bundled in the ``soundfile`` wheel), mono.

    One Ogg stream per task: the first frame carries the OpusHead and OpusTags pages, every
    chunk's audio leaves as pages at once (:data:`OGG_PAGE_LATENCY_MS`), and :meth:`finish`
    writes the end-of-stream page. The bit rate is libsndfile's default for the sample rate
    (the request's ``bit_rate`` is accepted and not applied).
    """

    def __init__(self, sample_rate: int) -> None:
        import soundfile  # only when a task asks for Opus: the other formats never load it

        self._sink = _Sink()
        self._file = soundfile.SoundFile(
            self._sink, mode="w", samplerate=sample_rate, channels=1, format="OGG", subtype="OPUS"
        )
        latency = soundfile._ffi.new("double*", OGG_PAGE_LATENCY_MS)
        soundfile._snd.sf_command(
            self._file._file, _SFC_SET_OGG_PAGE_LATENCY_MS, latency, soundfile._ffi.sizeof("double")
        )

    def encode(self, pcm: bytes) -> bytes:
        if pcm:
            self._file.write(np.frombuffer(pcm, dtype="<i2"))
        return self._sink.take()

    def end_sentence(self) -> bytes:
        return self._sink.take()

    def finish(self) -> bytes:
        self._file.close()
        return self._sink.take()


def new_encoder(audio_format: str, sample_rate: int) -> Encoder:
    """An encoder for one task; ``audio_format`` must be pcm, wav, mp3 or opus (validated by the caller)."""
    if audio_format == "pcm":
        return PcmEncoder()
    if audio_format == "wav":
        return WavEncoder(sample_rate)
    if audio_format == "mp3":
        return Mp3Encoder(sample_rate)
    if audio_format == "opus":
        return OpusEncoder(sample_rate)
    raise ValueError(f"no encoder for format {audio_format!r}")
