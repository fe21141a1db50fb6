"""Every client's command line through one table of cases: conformance.toml.

Each (client, case) pair runs the client's real CLI as a process against the ``faulty``
``voxgate serve``; a client that differs from the table, in exit status, stdout, the first line
of stderr or the files it leaves behind, fails here. Python's ``voxgate`` is the reference.
"""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from audio_checks import pcm_rms, read_mp3, read_ogg_opus, read_wav
from polyglot import COMMANDS, Faulty, built

TABLE = Path(__file__).with_name("conformance.toml")
CASES: list[dict[str, Any]] = tomllib.loads(TABLE.read_text())["case"]
KNOWN_KEYS = {
    "name",
    "args",
    "server",
    "faults",
    "given",
    "exit",
    "stdout",
    "stderr",
    "stderr_prefix",
    "files",
    "audio",
}


def test_the_table_is_well_formed() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CASES:
        assert set(case) <= KNOWN_KEYS, f"{case['name']}: unknown keys {set(case) - KNOWN_KEYS}"
        assert {"name", "args", "exit", "files"} <= set(case), case["name"]
        assert not ("stderr" in case and "stderr_prefix" in case), case["name"]
        if case["exit"] != 0:
            assert case["files"] == [], f"{case['name']}: a failure leaves no file behind"
            assert "stderr" in case or "stderr_prefix" in case, case["name"]


def expand(text: str, values: dict[str, str]) -> str:
    text = re.sub(r"\{(.)\*(\d+)\}", lambda m: m.group(1) * int(m.group(2)), text)
    return text.format(**values)


@pytest.mark.parametrize("language", sorted(COMMANDS))
@pytest.mark.parametrize("case", CASES, ids=[case["name"].replace(" ", "-") for case in CASES])
async def test_client_follows_the_table(
    language: str, case: dict[str, Any], faulty: Faulty, tmp_path: Path
) -> None:
    cli = built(language)
    values = {"prog": cli.program, "dir": str(tmp_path)}
    server = faulty.unreachable if case.get("server") == "unreachable" else faulty.address
    args = [expand(arg, values) for arg in case["args"]]
    for name, content in case.get("given", {}).items():
        (tmp_path / name).write_bytes(base64.b64decode(content))
    if "faults" in case:
        await faulty.set_faults({"times": 1, **case["faults"]})
    try:
        done = await cli.run(*args, "--server", server, cwd=tmp_path)
    finally:
        if "faults" in case:
            await faulty.set_faults({})
    context = f"{language} {args[:1]}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"

    assert done.returncode == case["exit"], context
    files = leftovers(tmp_path)
    assert files == sorted(case["files"]), context
    if files:
        values["size"] = str((tmp_path / files[0]).stat().st_size)
    expected_stdout = [expand(line, values) for line in case.get("stdout", [])]
    assert done.stdout.splitlines()[: len(expected_stdout)] == expected_stdout, context
    first_stderr_line = (done.stderr.splitlines() or [""])[0]
    if case["exit"] == 0:
        assert done.stderr == "", context
    elif "stderr" in case:
        assert first_stderr_line == expand(case["stderr"], values), context
    else:
        assert first_stderr_line.startswith(expand(case["stderr_prefix"], values)), context
    if "audio" in case:
        check_audio(case["audio"], (tmp_path / files[0]).read_bytes())


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def check_audio(audio_format: str, data: bytes) -> None:
    """The file holds whole, speech-like audio of that format, read by independent parsers."""
    if audio_format == "wav":
        wav = read_wav(data)  # its streaming header's sizes were patched: the reader sees every frame
        assert (wav.channels, wav.sample_width) == (1, 2) and len(wav.pcm) == len(data) - 44
        assert pcm_rms(wav.pcm) > 100
    elif audio_format == "pcm":
        assert not data.startswith(b"RIFF") and len(data) % 2 == 0
        assert pcm_rms(data) > 100
    elif audio_format == "mp3":
        mp3 = read_mp3(data)  # every byte belongs to a frame
        assert mp3.frames > 10 and mp3.distinct_frames > 1
    elif audio_format == "opus":
        ogg = read_ogg_opus(data)  # every page's checksum, OpusHead/OpusTags, an end-of-stream page
        assert ogg.channels == 1 and ogg.seconds > 0.2
    else:
        raise AssertionError(f"no check for {audio_format}")
