"""What a Node, Go or Java developer gets from voxgate: audio, text, and clear errors.

Each test runs once per client (the ``cli`` fixture); the clients are real processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audio_checks import pcm_rms, read_wav
from harness import TEXT, child_env
from polyglot import REPO, Cli, built
from voxgate.app import App


async def test_synthesize_returns_non_silent_wav_audio(cli: Cli, served: str, tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    done = await cli.run("synth", TEXT, "-o", str(out), "--server", served)
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    wav = read_wav(data)  # a complete file: the streaming header's sizes were patched
    assert (wav.sample_rate, wav.channels, wav.sample_width) == (22050, 1, 2)
    assert 2 < wav.seconds < 20
    assert pcm_rms(wav.pcm) > 100
    assert f"wrote {out}: {len(data)} bytes wav at 22050 Hz" in done.stdout
    assert "first packet " in done.stdout and " ms in voxgate" in done.stdout


async def test_generate_streams_deltas_and_a_final_usage(cli: Cli, served: str) -> None:
    prompt = "Say hello to the polyglot clients"
    done = await cli.run("generate", prompt, "--stream", "--json", "--server", served)
    assert done.returncode == 0, done.stderr
    *pieces, last = [json.loads(line) for line in done.stdout.splitlines()]  # one line per message
    assert len(pieces) >= 2 and all(piece["delta"] for piece in pieces)
    assert not any(piece.get("finishReason") or piece.get("usage") for piece in pieces)
    # The embedded default's model, local-echo, answers "Hello! You said: <the last user message>".
    assert "".join(piece["delta"] for piece in [*pieces, last]) == f"Hello! You said: {prompt}"
    assert last["finishReason"] == "stop" and last["model"] == "local-echo"
    usage = last["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


async def test_generate_without_streaming_returns_the_whole_answer(cli: Cli, served: str) -> None:
    done = await cli.run("generate", "Say hello", "--json", "--server", served)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["text"] == "Hello! You said: Say hello" and reply["finishReason"] == "stop"
    assert reply["usage"]["outputTokens"] > 0


async def test_empty_text_is_invalid_argument_naming_the_field(cli: Cli, served: str, tmp_path: Path) -> None:
    done = await cli.run("synth", "", "-o", str(tmp_path / "empty.wav"), "--server", served)
    assert done.returncode == 1
    assert "INVALID_ARGUMENT: text: must not be empty" in done.stderr


async def test_deadline_shorter_than_the_synthesis_is_deadline_exceeded_and_the_server_stays_healthy(
    cli: Cli, gateway: App, set_faults: Callable[..., Any], tmp_path: Path
) -> None:
    set_faults(first_packet_delay_ms=30_000)  # the synthesis takes far longer than the deadline
    slow = await cli.run(
        "synth", TEXT, "-o", str(tmp_path / "slow.wav"), "--server", gateway.address, "--timeout", "1"
    )
    assert slow.returncode == 1
    assert "DEADLINE_EXCEEDED" in slow.stderr

    set_faults()
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    out = tmp_path / "after.wav"
    done = await cli.run("synth", "Still here.", "-o", str(out), "--server", gateway.address)
    assert done.returncode == 0, done.stderr
    assert pcm_rms(read_wav(out.read_bytes()).pcm) > 100


async def test_java_library_example_runs_against_voxgate(served: str, tmp_path: Path) -> None:
    """clients/java/examples/HelloVoxgate.java, the docs' example: grpc-java 1.41 on Debian's
    netty 4.1.48 (built for a newer netty) doing real HTTP/2 calls, every library entry point."""
    built("java")
    java = REPO / "build/java"
    classpath = (
        f"{java / 'examples'}:{java / 'voxgate-client.jar'}:{(java / 'classpath').read_text().strip()}"
    )
    out = tmp_path / "hello.wav"
    proc = await asyncio.create_subprocess_exec(
        "java",
        "-cp",
        classpath,
        "HelloVoxgate",
        served,
        str(out),
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    data = out.read_bytes()
    assert lines[0].startswith(f"wav: {len(data)} bytes, first packet in voxgate ")
    wav = read_wav(data)
    assert pcm_rms(wav.pcm) > 100
    assert lines[1] == f"pcm: {len(wav.pcm)} bytes"  # the same text as PCM: the WAV's samples, no header
    assert lines[2:] == [
        "unary: Hello! You said: Say hello",
        "callback: Hello! You said: Say hello (stop)",
        "iterator first piece: Hello",
        "error: INVALID_ARGUMENT: text: must not be empty",
    ]


async def test_generate_sends_images_prints_reasoning_and_tool_calls(
    cli: Cli, served: str, tmp_path: Path
) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(
        base64.b64decode(  # a 1x1 PNG
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
        )
    )
    looked = await cli.run(
        "generate", "What?", "--model", "local-echo-vl", "--image", str(image), "--image", "https://x/a.png",
        "--server", served,
    )  # fmt: skip
    assert looked.returncode == 0, looked.stderr
    assert looked.stdout.splitlines()[0] == "Hello! You said: What? I see 2 images: 1x1 PNG; https://x/a.png"
    for streamed in ((), ("--stream",)):
        thought = await cli.run("generate", "Who are you?", "--think", *streamed, "--server", served)
        assert thought.returncode == 0, thought.stderr
        assert thought.stdout.splitlines()[:2] == [
            "thinking: The user said: Who are you?. I will say it back.",  # stdout is no terminal: not dimmed
            "Hello! You said: Who are you?",
        ]
        assert "(15 reasoning)" in thought.stdout
        called = await cli.run(
            "generate", "Use get_weather", "--tool", "get_weather", *streamed, "--server", served
        )
        assert called.returncode == 0, called.stderr
        assert called.stdout.splitlines()[1].startswith("tool call: get_weather({}) id call_")
        assert "finish tool_calls" in called.stdout
    missing = await cli.run("generate", "Hi", "--image", str(tmp_path / "nope.png"), "--server", served)
    assert missing.returncode == 2 and "--image" in missing.stderr


# The Java CLI has no synth-stdin or speak yet (issue 15 landed after it): Go and Node only.
@pytest.mark.parametrize("cli", ["go", "node"], indirect=True)
async def test_synth_stdin_speaks_piped_text(cli: Cli, served: str, tmp_path: Path) -> None:
    out = tmp_path / "piped.wav"
    done = await cli.run("synth-stdin", "-o", str(out), "--server", served, stdin=TEXT.encode())
    assert done.returncode == 0, done.stderr
    wav = read_wav(out.read_bytes())
    assert wav.sample_rate == 22050 and 2 < wav.seconds < 20 and pcm_rms(wav.pcm) > 100
    assert "pieces of text; first audio" in done.stdout


# The Java CLI has no synth-stdin or speak yet (issue 15 landed after it): Go and Node only.
@pytest.mark.parametrize("cli", ["go", "node"], indirect=True)
async def test_speak_prints_the_answer_and_writes_its_audio(cli: Cli, served: str, tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    prompt = "Say hello to the polyglot clients"
    done = await cli.run("speak", prompt, "-o", str(out), "--server", served)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"Hello! You said: {prompt}"
    assert "first audio" in done.stdout
    wav = read_wav(out.read_bytes())
    assert 1 < wav.seconds < 20 and pcm_rms(wav.pcm) > 100
