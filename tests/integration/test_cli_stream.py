"""`voxgate synth --stdin` and `voxgate speak`, as processes against `voxgate serve` (embedded upstream)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audio_checks import pcm_rms, read_wav
from harness import Process, child_env


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2"], child_env())
    address = process.start("voxgate listening on ")
    try:
        yield address
    finally:
        process.terminate()


def wait_for(condition: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.02)


def test_synth_stdin_speaks_text_as_it_is_written(server: str, tmp_path: Path) -> None:
    out = tmp_path / "piped.wav"
    writer = subprocess.Popen(
        [sys.executable, "-m", "voxgate.cli", "synth", "--stdin", "-o", str(out), "--server", server],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdin is not None
    try:
        writer.stdin.write(b"The first sentence is written now. ")
        writer.stdin.flush()
        # Its audio reaches the file while standard input is still open: streamed, not buffered.
        wait_for(lambda: out.exists() and out.stat().st_size > 44, "audio of the first sentence in the file")
        stdout, stderr = writer.communicate("And the rest comes later, ünïcode too.".encode(), timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0, stderr.decode()
    assert "pieces of text" in stdout.decode()
    wav = read_wav(out.read_bytes())  # complete: the header's sizes were patched
    assert wav.sample_rate == 22050 and 2 < wav.seconds < 15
    assert pcm_rms(wav.pcm) > 100


def test_synth_needs_text_or_stdin(server: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voxgate.cli", "synth", "--server", server],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "give the text or --stdin" in done.stderr


def test_speak_prints_the_answer_and_writes_its_audio(server: str, tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voxgate.cli",
            "speak",
            "Say hello to the pool",
            "-o",
            str(out),
            "--server",
            server,
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Hello! You said: Say hello to the pool"
    assert lines[1].startswith(f"wrote {out}: ") and "first audio" in lines[2]
    wav = read_wav(out.read_bytes())
    assert 1 < wav.seconds < 15 and pcm_rms(wav.pcm) > 100
