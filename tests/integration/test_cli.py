"""The commands a user types: `voxgate serve`, `voxgate synth`, `voxgate dev-upstream`, as processes."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from audio_checks import pcm_rms, read_wav
from harness import Process, child_env
from voxgate import config


def synth(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxgate.cli", "synth", *args, "--server", server],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_on_the_embedded_default_then_synth_a_wav_then_drain(tmp_path: Path) -> None:
    server = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2"], child_env())
    address = server.start("voxgate listening on ")
    try:
        out = tmp_path / "hello.wav"
        done = synth(address, "Hello world", "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert "first packet" in done.stdout and "connection " in done.stdout
        wav = read_wav(out.read_bytes())  # a complete file: the streaming header was patched
        assert wav.sample_rate == 22050 and 0.5 < wav.seconds < 5
        assert pcm_rms(wav.pcm) > 100
    finally:
        code = server.terminate()
    assert code == 0, server.output()
    assert "stopped" in server.output()
    # The DashScope URLs are not used here: the settings line says so, the next one has the real ones.
    settings_line = next(line for line in server.output().splitlines() if "settings:" in line)
    assert "dashscope" not in settings_line
    assert "'ws_url': 'embedded local upstream (loopback)'" in settings_line
    assert "serving on the embedded local upstream at ws://127.0.0.1:" in server.output()


def test_synth_reports_a_bad_request_with_its_status(tmp_path: Path) -> None:
    server = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "1"], child_env())
    address = server.start("voxgate listening on ")
    try:
        done = synth(address, "   ", "-o", str(tmp_path / "x.wav"))
    finally:
        server.terminate()
    assert done.returncode == 1
    assert "INVALID_ARGUMENT: text: must not be empty" in done.stderr


def test_api_key_never_appears_in_output(tmp_path: Path) -> None:
    secret = "sk-SECRET-" + "7" * 24
    upstream = Process(["dev-upstream", "--port", "0"], child_env(DASHSCOPE_API_KEY=secret))
    ws_url = upstream.start("voxgate dev-upstream listening on ")
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2", "--log-level", "DEBUG"],
        child_env(DASHSCOPE_API_KEY=secret, DASHSCOPE_WEBSOCKET_BASE_URL=ws_url),
    )
    try:
        address = server.start("voxgate listening on ")
        done = synth(address, "Secrets stay secret.", "-o", str(tmp_path / "s.wav"))
        assert done.returncode == 0, done.stderr
    finally:
        server.terminate()
        upstream.terminate()
    everything = server.output() + upstream.output() + done.stdout + done.stderr
    assert f"'ws_url': '{ws_url}'" in server.output()  # the settings were logged...
    assert secret not in everything  # ...without the key


def test_bad_configuration_names_the_variable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voxgate.cli", "serve"],
        env=child_env(VOXGATE_POOL_MAX_SIZE="many"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "VOXGATE_POOL_MAX_SIZE" in done.stderr


def generate(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxgate.cli", "generate", *args, "--server", server],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_streams_on_the_embedded_default() -> None:
    server = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "1"], child_env())
    address = server.start("voxgate listening on ")
    try:
        streamed = generate(address, "--stream", "Say hello")
        whole = generate(address, "Say hello", "--max-tokens", "2")
        bad = generate(address, "   ")
    finally:
        server.terminate()
    assert streamed.returncode == 0, streamed.stderr
    lines = streamed.stdout.splitlines()
    assert lines[0] == "Hello! You said: Say hello"
    assert "finish stop; usage 2 in + 7 out = 9 tokens" in lines[1]
    assert "first token" in lines[2] and "model local-echo" in lines[2] and "1 attempt(s)" in lines[2]
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.splitlines()[:2] == ["Hello!", "finish length; usage 2 in + 2 out = 4 tokens"]
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT: messages[0].content: must not be empty" in bad.stderr


def test_generate_sends_images_prints_reasoning_and_tool_calls(tmp_path: Path) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(
        base64.b64decode(  # a 1x1 PNG
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
        )
    )
    server = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "1"], child_env())
    address = server.start("voxgate listening on ")
    try:
        looked = generate(address, "--model", "local-echo-vl", "--image", str(image), "What is this?")
        linked = generate(
            address, "--model", "local-echo-vl", "--image", "https://example.com/a.png", "And this?"
        )
        thought = generate(address, "--stream", "--think", "Who are you?")
        called = generate(address, "--tool", 'get_weather={"type": "object"}', "Use get_weather")
        missing = generate(address, "--image", str(tmp_path / "nope.png"), "Hi")
    finally:
        server.terminate()
    assert looked.returncode == 0, looked.stderr
    assert looked.stdout.splitlines()[0] == "Hello! You said: What is this? I see 1 image: 1x1 PNG"
    assert (
        linked.stdout.splitlines()[0] == "Hello! You said: And this? I see 1 image: https://example.com/a.png"
    )
    assert thought.returncode == 0, thought.stderr
    assert thought.stdout.splitlines()[:2] == [
        "thinking: The user said: Who are you?. I will say it back.",
        "Hello! You said: Who are you?",
    ]
    assert "(15 reasoning)" in thought.stdout and "first answer token" in thought.stdout
    assert called.returncode == 0, called.stderr
    assert called.stdout.splitlines()[1].startswith("tool call: get_weather({}) id call_")
    assert "finish tool_calls" in called.stdout
    assert missing.returncode == 2 and "--image" in missing.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxgate.cli", *args],
        # Wide: argparse wraps help at the terminal width, breaking URLs at their hyphens.
        env=child_env(COLUMNS="1000"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_help_shows_every_setting_with_its_metavar_default_and_variable() -> None:
    done = run_cli("serve", "--help")
    assert done.returncode == 0 and not done.stderr, done.stderr
    text = " ".join(done.stdout.split())
    defaults = config.Settings()
    for spec in config.SETTINGS:
        assert spec.metavar not in (None, "VALUE"), spec.name
        assert f"{spec.flag} {spec.metavar}" in text
        shown = spec.default_text if spec.default_text is not None else str(getattr(defaults, spec.name))
        assert f"(default: {shown}; ${spec.env})" in text
    # A "%" in a help text is printed, not read as a format.
    assert "less up to 10 % random jitter" in text


def test_a_stray_flag_gets_the_command_usage_not_the_top_level_one() -> None:
    done = run_cli("synth", "Hi", "--speed", "2")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: voxgate synth ")
    assert "voxgate synth: error: unrecognized arguments: --speed 2" in done.stderr
