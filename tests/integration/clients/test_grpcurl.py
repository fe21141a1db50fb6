"""The README's grpcurl walkthrough, against ``voxgate serve`` on its embedded default.

grpcurl knows nothing of voxgate's protos: everything comes from server reflection.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from audio_checks import pcm_rms, pcm_seconds
from harness import child_env

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def grpcurl(*args: str) -> str:
    done = subprocess.run(
        [GRPCURL, "-plaintext", *args], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def json_messages(text: str) -> list[dict[str, Any]]:
    """grpcurl prints each message of a stream as its own JSON document, one after another."""
    decoder, messages = json.JSONDecoder(), []
    rest = text.strip()
    while rest:
        message, end = decoder.raw_decode(rest)
        messages.append(message)
        rest = rest[end:].lstrip()
    return messages


def test_list_services_health_check_synthesize_and_generate(served: str) -> None:
    services = grpcurl(served, "list").split()
    assert {
        "voxgate.speech.v1.SpeechService",
        "voxgate.generation.v1.GenerationService",
        "grpc.health.v1.Health",
    } <= set(services)
    assert "rpc Synthesize" in grpcurl(served, "describe", "voxgate.speech.v1.SpeechService")

    health = json.loads(grpcurl(served, "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}

    request = json.dumps({"text": "Hello from grpcurl.", "format": "AUDIO_FORMAT_PCM"})
    messages = json_messages(grpcurl("-d", request, served, "voxgate.speech.v1.SpeechService/Synthesize"))
    *chunks, last = messages
    audio = b"".join(base64.b64decode(chunk["audio"]) for chunk in chunks)
    summary = last["summary"]
    assert int(summary["audio_bytes"]) == len(audio)  # uint64 is a JSON string
    assert summary["format"] == "AUDIO_FORMAT_PCM" and summary["sample_rate"] == 22050
    assert pcm_seconds(audio, 22050) > 0.5
    assert pcm_rms(audio) > 100

    request = json.dumps({"messages": [{"role": "user", "content": "Say hello"}]})
    reply = json.loads(grpcurl("-d", request, served, "voxgate.generation.v1.GenerationService/Generate"))
    assert reply["text"] == "Hello! You said: Say hello" and reply["model"] == "local-echo"


def test_speak_and_synthesize_stream(served: str) -> None:
    assert "rpc Speak" in grpcurl(served, "describe", "voxgate.voice.v1.VoiceService")

    request = json.dumps(
        {
            "messages": [{"role": "user", "content": "Say hello"}],
            "speech": {"format": "AUDIO_FORMAT_PCM", "sample_rate": 16000},
        }
    )
    *items, last = json_messages(grpcurl("-d", request, served, "voxgate.voice.v1.VoiceService/Speak"))
    text = "".join(item.get("text", "") for item in items)
    audio = b"".join(base64.b64decode(item["audio"]) for item in items if "audio" in item)
    assert text == "Hello! You said: Say hello"
    assert int(last["summary"]["audio_bytes"]) == len(audio) and pcm_rms(audio) > 100

    # A bidirectional stream from stdin: the config first, then the text in pieces.
    pieces = [
        {"config": {"format": "AUDIO_FORMAT_PCM"}},
        {"text": "Hello from "},
        {"text": "grpcurl, in pieces."},
    ]
    done = subprocess.run(
        [GRPCURL, "-plaintext", "-d", "@", served, "voxgate.speech.v1.SpeechService/SynthesizeStream"],
        input="\n".join(json.dumps(piece) for piece in pieces),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    *chunks, last = json_messages(done.stdout)
    audio = b"".join(base64.b64decode(chunk["audio"]) for chunk in chunks)
    assert last["summary"]["text_pieces"] == 2 and pcm_seconds(audio, 22050) > 0.5
