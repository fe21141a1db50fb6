"""The service config's retryPolicy, seen working: clients/service_config.json retries a call
whose attempt ended UNAVAILABLE before any response, and never one that already had a response.

``faulty`` runs voxgate with ``--max-attempts 1``: an upstream fault hit by a call's only
upstream attempt ends that call UNAVAILABLE. With ``times = 1`` the next attempt is clean, so
a client that retries succeeds, and the upstream counts one task (or generation) per RPC voxgate
received. Python's ``voxgate`` has no service config, so only the clients under clients/ run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_checks import pcm_rms, read_wav
from polyglot import Cli, Faulty


async def counted(faulty: Faulty, counter: str, cli: Cli, *args: str) -> tuple[int, int, str, str]:
    """Run the client once with ``args``; return its exit status, how much ``counter`` of the
    upstream grew meanwhile, stdout and stderr."""
    before = (await faulty.upstream_stats())[counter]
    try:
        done = await cli.run(*args, "--server", faulty.address)
    finally:
        await faulty.set_faults({})
    grown = (await faulty.upstream_stats())[counter] - before
    return done.returncode, grown, done.stdout, done.stderr


async def test_synthesis_failing_before_any_audio_is_retried_by_the_client(
    cli: Cli, faulty: Faulty, tmp_path: Path
) -> None:
    await faulty.set_faults({"fail_after_bytes": 0, "fail_code": "InternalError", "times": 1})
    out = tmp_path / "retried.wav"
    code, tasks, stdout, stderr = await counted(
        faulty, "tasks_started", cli, "synth", "Try again.", "-o", str(out)
    )
    assert code == 0, stderr
    assert tasks == 2  # the failed one (voxgate answered UNAVAILABLE) and the client's retry
    assert "1 attempt(s)" in stdout  # voxgate did not retry it itself: a second RPC arrived
    assert pcm_rms(read_wav(out.read_bytes()).pcm) > 100


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "stream"])
async def test_generation_unavailable_before_any_response_is_retried_by_the_client(
    cli: Cli, faulty: Faulty, streaming: bool
) -> None:
    await faulty.set_faults({"generation": {"error_status": 503}, "times": 1})
    stream = ["--stream"] if streaming else []
    code, generations, stdout, stderr = await counted(
        faulty, "generations_started", cli, "generate", "Say hello", *stream
    )
    assert code == 0, stderr
    assert generations == 2
    assert stdout.startswith("Hello! You said: Say hello\n") and "1 attempt(s)" in stdout


async def test_a_synthesis_that_received_audio_is_never_retried(
    cli: Cli, faulty: Faulty, tmp_path: Path
) -> None:
    # A retry would succeed (the fault hits once): only a client that does not retry fails here.
    await faulty.set_faults({"drop_after_bytes": 8000, "times": 1})
    out = tmp_path / "cut.wav"
    code, tasks, _, stderr = await counted(
        faulty,
        "tasks_started",
        cli,
        "synth",
        "A sentence long enough to be cut after its first audio.",
        "-o",
        str(out),
    )
    assert (code, tasks) == (1, 1), stderr
    assert stderr.startswith(f"{cli.program} synth: UNAVAILABLE: audio stream interrupted after ")
    assert not out.exists()


async def test_a_generation_stream_that_received_text_is_never_retried(cli: Cli, faulty: Faulty) -> None:
    await faulty.set_faults({"generation": {"error_after_tokens": 3}, "times": 1})
    code, generations, stdout, stderr = await counted(
        faulty, "generations_started", cli, "generate", "Say hello", "--stream"
    )
    assert (code, generations) == (1, 1), stderr
    assert stdout == "Hello! You\n"
    assert stderr.startswith(f"{cli.program} generate: UNAVAILABLE: answer interrupted after 10 characters")
