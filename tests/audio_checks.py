"""Independent readers for the audio voxgate returns: is it speech-like, how long is it."""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass

_MP3_BITRATES_KBPS = {
    "1": (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "2": (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def pcm_rms(pcm: bytes) -> float:
    """Root mean square of 16-bit little-endian mono samples (full scale 32768)."""
    count = len(pcm) // 2
    if count == 0:
        return 0.0
    samples = struct.unpack(f"<{count}h", pcm[: count * 2])
    return math.sqrt(sum(s * s for s in samples) / count)


def pcm_seconds(pcm: bytes, sample_rate: int) -> float:
    return len(pcm) / 2 / sample_rate


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int
    seconds: float
    pcm: bytes


def read_wav(data: bytes) -> WavInfo:
    """Parse a complete WAV file with the standard library."""
    with wave.open(io.BytesIO(data)) as wav:
        frames = wav.readframes(wav.getnframes())
        return WavInfo(
            wav.getframerate(),
            wav.getnchannels(),
            wav.getsampwidth(),
            wav.getnframes() / wav.getframerate(),
            frames,
        )


@dataclass(frozen=True)
class Mp3Info:
    sample_rate: int
    frames: int
    seconds: float
    distinct_frames: int


def read_mp3(data: bytes) -> Mp3Info:
    """Walk the MPEG audio Layer III frame headers from the first byte to the last."""
    offset, frames, seconds = 0, 0, 0.0
    sample_rates: set[int] = set()
    bodies: set[bytes] = set()
    while offset + 4 <= len(data):
        header = int.from_bytes(data[offset : offset + 4], "big")
        if header >> 21 != 0x7FF:
            raise ValueError(f"no MPEG frame sync at byte {offset}")
        version = (header >> 19) & 0b11  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
        layer = (header >> 17) & 0b11
        if layer != 0b01 or version == 1:
            raise ValueError(f"not a Layer III frame at byte {offset}")
        bitrate = _MP3_BITRATES_KBPS["1" if version == 3 else "2"][(header >> 12) & 0xF] * 1000
        sample_rate = _MP3_SAMPLE_RATES[version][(header >> 10) & 0b11]
        padding = (header >> 9) & 1
        samples = 1152 if version == 3 else 576
        length = samples // 8 * bitrate // sample_rate + padding
        if length <= 4:
            raise ValueError(f"bad frame length at byte {offset}")
        bodies.add(data[offset + 4 : offset + length])
        sample_rates.add(sample_rate)
        frames += 1
        seconds += samples / sample_rate
        offset += length
    if offset != len(data) or len(sample_rates) != 1:
        raise ValueError("trailing bytes or mixed sample rates")
    return Mp3Info(sample_rates.pop(), frames, seconds, len(bodies))
