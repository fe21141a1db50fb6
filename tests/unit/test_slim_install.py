"""An install without the `demo` extra (the production image): the CLI works, and `voxgate serve`
without a key says how to get the embedded upstream instead of failing on an import."""

from __future__ import annotations

import os
import subprocess
import sys

# The demo extra's modules; None in sys.modules makes their import raise ImportError, as in a venv
# where they were never installed.
DEMO_EXTRA = ("numpy", "lameenc", "espeakng_loader", "soundfile")


def _voxgate(*args: str) -> subprocess.CompletedProcess[str]:
    probe = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({list(DEMO_EXTRA)!r}))\n"
        "from voxgate.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_serve_without_a_key_and_without_the_demo_extra_says_how_to_install_it() -> None:
    result = _voxgate("serve", "--listen", "127.0.0.1:0")
    assert result.returncode == 2, result.stderr
    assert "voxgate: configuration error: DASHSCOPE_API_KEY: is not set" in result.stderr
    assert "pip install 'voxgate[demo]'" in result.stderr
    assert "docker build --target demo" in result.stderr
    assert "Traceback" not in result.stderr
    assert "voxgate listening on" not in result.stdout


def test_the_cli_parses_every_command_without_the_demo_extra() -> None:
    for command in ("serve", "stats", "dev-upstream"):
        result = _voxgate(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith("usage: "), command
