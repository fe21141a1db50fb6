"""The local upstream's speech: real espeak-ng audio, resampling, and the wav/mp3 encoders."""

from __future__ import annotations

import numpy as np
import pytest

from voxgate_dev.audio import Mp3Encoder, WavEncoder, new_encoder, wav_header
from voxgate_dev.espeak import NATIVE_SAMPLE_RATE, Voice, get_engine, resample

TEXT = "Hello there, this is a test of the local upstream."


def seconds(pcm: bytes, sample_rate: int) -> float:
    return len(pcm) / 2 / sample_rate


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 24000, 48000])
async def test_espeak_speaks_at_every_rate(sample_rate: int) -> None:
    pcm = await get_engine().synthesize(TEXT, Voice(), sample_rate)
    assert len(pcm) % 2 == 0
    # ~10 words at 175 wpm, plus the end pause: a few seconds, whatever the rate.
    assert 1.5 < seconds(pcm, sample_rate) < 6.0
    assert rms(pcm) > 500, "speech, not silence"


async def test_speech_rate_and_volume_are_applied() -> None:
    engine = get_engine()
    slow = await engine.synthesize(TEXT, Voice(rate=0.5), 16000)
    fast = await engine.synthesize(TEXT, Voice(rate=2.0), 16000)
    assert seconds(slow, 16000) > 1.5 * seconds(fast, 16000)
    quiet = await engine.synthesize(TEXT, Voice(volume=10), 16000)
    loud = await engine.synthesize(TEXT, Voice(volume=100), 16000)
    assert rms(loud) > 2 * rms(quiet)


async def test_mandarin_voice_speaks_chinese() -> None:
    pcm = await get_engine().synthesize("床前明月光，疑是地上霜。", Voice(name="cmn"), 16000)
    assert 1.0 < seconds(pcm, 16000) < 8.0
    assert rms(pcm) > 500


async def test_repeated_text_comes_from_the_cache() -> None:
    engine = get_engine()
    first = await engine.synthesize("Cache me.", Voice(), 24000)
    second = await engine.synthesize("Cache me.", Voice(), 24000)
    assert second is first


def test_resample_keeps_duration_and_tone() -> None:
    rate_in, rate_out, tone_hz = NATIVE_SAMPLE_RATE, 8000, 440
    t = np.arange(rate_in) / rate_in
    pcm = (np.sin(2 * np.pi * tone_hz * t) * 10_000).astype("<i2").tobytes()
    out = np.frombuffer(resample(pcm, rate_in, rate_out), dtype="<i2")
    assert len(out) == rate_out
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(np.argmax(spectrum)) - tone_hz) <= 1  # 1 Hz bins over one second


def test_wav_header_and_only_one() -> None:
    encoder = WavEncoder(16000)
    first = encoder.encode(b"\x01\x00" * 100)
    second = encoder.encode(b"\x02\x00" * 100)
    assert first[:44] == wav_header(16000)
    assert first[44:] == b"\x01\x00" * 100
    assert second == b"\x02\x00" * 100
    header = first[:44]
    assert header[0:4] == b"RIFF" and header[8:12] == b"WAVE" and header[12:16] == b"fmt "
    assert header[4:8] == b"\xff\xff\xff\xff", "RIFF size unknown while streaming"
    assert header[36:40] == b"data" and header[40:44] == b"\xff\xff\xff\xff"
    assert int.from_bytes(header[20:22], "little") == 1, "PCM"
    assert int.from_bytes(header[22:24], "little") == 1, "mono"
    assert int.from_bytes(header[24:28], "little") == 16000
    assert int.from_bytes(header[28:32], "little") == 32000, "byte rate"
    assert int.from_bytes(header[34:36], "little") == 16, "bits per sample"


# MPEG audio frame headers (ISO 11172-3 / 13818-3), layer III only.
_BITRATES_KBPS = {
    "mpeg1": [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    "mpeg2": [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_SAMPLE_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}


def mp3_frames(data: bytes) -> list[tuple[int, int]]:
    """Walk MPEG layer III frames from the start; returns (sample_rate, bitrate_kbps) per frame.

    Fails unless every frame begins with a valid header exactly where the previous one ended.
    """
    frames = []
    position = 0
    while position < len(data):
        header = data[position : position + 4]
        assert len(header) == 4, f"truncated header at {position}"
        assert header[0] == 0xFF and header[1] & 0xE0 == 0xE0, f"no frame sync at {position}"
        version = (header[1] >> 3) & 0x3
        assert version in _SAMPLE_RATES, f"reserved MPEG version at {position}"
        assert (header[1] >> 1) & 0x3 == 0b01, "layer III"
        bitrate_index = header[2] >> 4
        rate_index = (header[2] >> 2) & 0x3
        assert 0 < bitrate_index < 15 and rate_index < 3
        padding = (header[2] >> 1) & 0x1
        sample_rate = _SAMPLE_RATES[version][rate_index]
        bitrate = _BITRATES_KBPS["mpeg1" if version == 0b11 else "mpeg2"][bitrate_index]
        samples_per_frame = 1152 if version == 0b11 else 576
        length = samples_per_frame // 8 * bitrate * 1000 // sample_rate + padding
        frames.append((sample_rate, bitrate))
        position += length
    assert position == len(data), "the last frame is complete"
    return frames


@pytest.mark.parametrize("sample_rate", [16000, 22050, 44100])
async def test_mp3_is_a_valid_frame_stream(sample_rate: int) -> None:
    engine = get_engine()
    encoder = Mp3Encoder(sample_rate)
    chunk = sample_rate // 10 * 2  # 100 ms, as the upstream frames it
    stream = b""
    for sentence in ("First sentence.", "And a second one."):
        pcm = await engine.synthesize(sentence, Voice(), sample_rate)
        for offset in range(0, len(pcm), chunk):
            stream += encoder.encode(pcm[offset : offset + chunk])
        stream += encoder.end_sentence()

    frames = mp3_frames(stream)
    assert {rate for rate, _ in frames} == {sample_rate}
    assert {bitrate for _, bitrate in frames} == {128}
    frame_s = (1152 if sample_rate > 24000 else 576) / sample_rate
    assert 1.0 < len(frames) * frame_s < 6.0, "about as long as the speech"


def test_pcm_passes_through() -> None:
    encoder = new_encoder("pcm", 16000)
    assert encoder.encode(b"\x01\x02") == b"\x01\x02"
    assert encoder.end_sentence() == b""
