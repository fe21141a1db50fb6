"""Opus end to end: the embedded upstream encodes Ogg/Opus, voxgate forwards it, decoders accept it."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import numpy as np
import pytest
import soundfile

from audio_checks import pcm_rms, read_ogg_opus
from harness import TEXT, Request, collect
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2

PLAUSIBLE_SECONDS = (2.0, 12.0)  # as for PCM of the same text (tests/integration/test_synthesize.py)
SILENCE_RMS = 100.0


def decode(audio: bytes) -> tuple[np.ndarray, int]:
    """libopus's decoder (through libsndfile): the whole stream to 16-bit samples."""
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="int16")
    return samples, rate


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000, 48000])
async def test_opus_is_a_valid_ogg_stream_a_decoder_accepts(client: Client, sample_rate: int) -> None:
    audio, summary = await collect(
        client, Request(text=TEXT, format=speech_pb2.AUDIO_FORMAT_OPUS, sample_rate=sample_rate)
    )
    assert (summary.format, summary.sample_rate) == (speech_pb2.AUDIO_FORMAT_OPUS, sample_rate)
    assert summary.audio_chunks > 2  # streamed chunk by chunk, not one buffered file
    ogg = read_ogg_opus(audio)
    assert (ogg.sample_rate, ogg.channels) == (sample_rate, 1)
    assert PLAUSIBLE_SECONDS[0] < ogg.seconds < PLAUSIBLE_SECONDS[1]
    samples, rate = decode(audio)
    assert rate == sample_rate
    assert abs(len(samples) / rate - ogg.seconds) < 0.1
    assert pcm_rms(samples.tobytes()) > SILENCE_RMS


async def test_opus_default_rate_is_48000(client: Client) -> None:
    audio, summary = await collect(client, Request(text="Default rate.", format=speech_pb2.AUDIO_FORMAT_OPUS))
    assert summary.sample_rate == 48000 and read_ogg_opus(audio).sample_rate == 48000


async def test_opus_from_a_stream_of_pieces_is_one_ogg_stream(client: Client) -> None:
    async def pieces() -> AsyncIterator[str]:
        for word in TEXT.split(" "):
            yield word + " "
            await asyncio.sleep(0.01)  # a model's pace (the input pattern)

    audio = bytearray()
    config = speech_pb2.SynthesisConfig(format=speech_pb2.AUDIO_FORMAT_OPUS, sample_rate=24000)
    async for item in client.stream_text(config, pieces(), timeout_s=30):
        if isinstance(item, bytes):
            audio += item
    ogg = read_ogg_opus(bytes(audio))
    assert PLAUSIBLE_SECONDS[0] < ogg.seconds < PLAUSIBLE_SECONDS[1]
    samples, rate = decode(bytes(audio))
    assert rate == 24000 and pcm_rms(samples.tobytes()) > SILENCE_RMS
