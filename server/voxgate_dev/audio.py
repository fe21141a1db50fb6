"""Streaming audio encoders for the formats the local upstream sends: pcm, wav, mp3.

One :class:`Encoder` lives for one task. For every sentence the caller feeds PCM chunks to
:meth:`Encoder.encode` and then calls :meth:`Encoder.end_sentence`; every non-empty result
becomes one binary frame. For wav/mp3 only the first frame carries the header; later frames
are bare audio (docs/protocol.md#binary-audio-frames).
"""

from __future__ import annotations

import struct
from typing import Protocol

import lameenc

MP3_BIT_RATE_KBPS = 128
"""The SDK's MP3 formats are 128 or 256 kbps (docs/protocol.md#binary-audio-frames); we always make 128."""
_MP3_QUALITY = 7  # LAME quality 0 (best, slow) .. 9 (fast); 7 is plenty for espeak voices.


class Encoder(Protocol):
    def encode(self, pcm: bytes) -> bytes:
        """Encoded bytes for this PCM chunk; may be empty (send no frame then)."""

    def end_sentence(self) -> bytes:
        """Bytes still held back at the end of a sentence; may be empty."""


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

    def _new_lame(self) -> lameenc.Encoder:
        lame = lameenc.Encoder()
        lame.set_bit_rate(MP3_BIT_RATE_KBPS)
        lame.set_in_sample_rate(self._sample_rate)
        lame.set_channels(1)
        lame.set_quality(_MP3_QUALITY)
        return lame


def new_encoder(audio_format: str, sample_rate: int) -> Encoder:
    """An encoder for one task; ``audio_format`` must be pcm, wav or mp3 (validated by the caller)."""
    if audio_format == "pcm":
        return PcmEncoder()
    if audio_format == "wav":
        return WavEncoder(sample_rate)
    if audio_format == "mp3":
        return Mp3Encoder(sample_rate)
    raise ValueError(f"no encoder for format {audio_format!r}")
