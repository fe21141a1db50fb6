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


@dataclass(frozen=True)
class OggOpusInfo:
    sample_rate: int
    """The input sample rate OpusHead declares (Opus itself always decodes at 48 kHz)."""
    channels: int
    pages: int
    seconds: float
    """From the last page's granule position, less the pre-skip, at 48 kHz (RFC 7845)."""


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def read_ogg_opus(data: bytes) -> OggOpusInfo:
    """Walk an Ogg/Opus stream page by page (RFC 3533, RFC 7845): checksums, headers, duration."""
    offset, pages, granule = 0, 0, 0
    packets: list[bytes] = []
    partial = b""
    flags = 0
    while offset < len(data):
        if data[offset : offset + 4] != b"OggS":
            raise ValueError(f"no Ogg capture pattern at byte {offset}")
        flags = data[offset + 5]
        granule = struct.unpack_from("<q", data, offset + 6)[0]
        checksum = struct.unpack_from("<I", data, offset + 22)[0]
        segments = data[offset + 26]
        lacing = data[offset + 27 : offset + 27 + segments]
        header_len = 27 + segments
        body_len = sum(lacing)
        page = bytearray(data[offset : offset + header_len + body_len])
        page[22:26] = b"\0\0\0\0"
        if _ogg_crc(bytes(page)) != checksum:
            raise ValueError(f"bad page checksum at byte {offset}")
        body = data[offset + header_len : offset + header_len + body_len]
        position = 0
        for size in lacing:
            partial += body[position : position + size]
            position += size
            if size < 255:
                packets.append(partial)
                partial = b""
        offset += header_len + body_len
        pages += 1
    if len(packets) < 2 or not packets[0].startswith(b"OpusHead") or not packets[1].startswith(b"OpusTags"):
        raise ValueError("no OpusHead and OpusTags packets")
    if not flags & 0x04:
        raise ValueError("the last page is not marked end of stream")
    head = packets[0]
    channels, pre_skip, sample_rate = (
        head[9],
        struct.unpack_from("<H", head, 10)[0],
        struct.unpack_from("<I", head, 12)[0],
    )
    return OggOpusInfo(sample_rate, channels, pages, (granule - pre_skip) / 48000)
