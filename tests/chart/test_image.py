"""The container recipe, read statically (no container engine runs here): the facts the chart relies on."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helm_chart import chart_values, render

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|cargo|rustc|golang)\b")


def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def _final(instruction: str) -> list[str]:
    return [arguments for name, arguments in _stages()[-1] if name == instruction]


def test_image_is_multi_stage_and_the_final_stage_takes_only_the_virtualenv() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert next(arguments for name, arguments in stages[0] if name == "FROM").endswith(" AS builder")
    assert "pip wheel" in " ".join(arguments for name, arguments in stages[0] if name == "RUN")
    assert _final("COPY") == ["--from=builder /opt/voxgate /opt/voxgate"]


def test_final_stage_installs_no_build_tools() -> None:
    run = " ".join(_final("RUN"))
    assert not BUILD_TOOLS.search(run), run
    assert "pip install" not in run and "apt-get" not in run


def test_image_runs_voxgate_serve_as_the_charts_non_root_user() -> None:
    (user,) = _final("USER")
    uid, _, gid = user.partition(":")
    security = chart_values()["podSecurityContext"]
    # Numeric, or Kubernetes' runAsNonRoot cannot verify it.
    assert (int(uid), int(gid)) == (security["runAsUser"], security["runAsGroup"])
    assert int(uid) != 0
    (entrypoint,) = _final("ENTRYPOINT")
    assert json.loads(entrypoint) == ["voxgate", "serve"]
    # The chart passes no command or args: the image's entrypoint is what runs.
    container = render().container()
    assert "command" not in container and "args" not in container


def test_image_listens_on_all_interfaces_at_the_exposed_port_and_writes_no_bytecode() -> None:
    env = " ".join(_final("ENV"))
    port = chart_values()["containerPort"]
    assert f"VOXGATE_LISTEN=0.0.0.0:{port}" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert _final("EXPOSE") == [str(port)]


def test_dockerignore_keeps_the_build_context_to_the_package() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # allow-list: .venv, node_modules, .git and tests stay out
    assert {"!pyproject.toml", "!server/"} <= set(lines)
