"""The container recipe and its lock files, read statically (no container engine runs here): the
facts the chart relies on, and what makes a rebuild reproducible."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helm_chart import chart_values, render

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|cargo|rustc|golang)\b")
# The embedded upstream's audio stack: only in the demo target.
DEMO_ONLY = {"numpy", "lameenc", "espeakng-loader", "soundfile"}
TARGETS = ("production", "demo")

Stage = tuple[str, list[tuple[str, str]]]  # (name, [(INSTRUCTION, arguments)])


def _stages() -> list[Stage]:
    """The Dockerfile's stages (name, instructions), continuation lines joined, in file order."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            name = arguments.split(" AS ")[-1].strip() if " AS " in arguments else str(len(stages))
            stages.append((name, []))
        if stages:
            stages[-1][1].append((instruction.upper(), arguments.strip()))
    return stages


def _chain(target: str) -> list[tuple[str, str]]:
    """Every instruction a target stage runs or inherits, base stages first."""
    stages = dict(_stages())
    own = stages[target]
    base = own[0][1].split(" AS ")[0].strip()
    return (_chain(base) if base in stages else []) + own


def _of(target: str, instruction: str) -> list[str]:
    return [arguments for name, arguments in _chain(target) if name == instruction]


def _global_arg(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(rf"^ARG {name}=(\S+)$", text.split("\nFROM ", 1)[0], flags=re.MULTILINE)
    assert match, f"no global ARG {name} with a default"
    return match.group(1)


def _lock(name: str) -> dict[str, str]:
    """requirements/<name>.txt as {package: version}; every entry pinned and hashed."""
    text = re.sub(r"\\\n", " ", (ROOT / "requirements" / f"{name}.txt").read_text())
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *hashes = line.split("--hash=")
        package, _, version = requirement.strip().partition("==")
        assert version and hashes, f"{name}.txt: {line[:80]} is not pinned with hashes"
        assert all(h.strip().startswith("sha256:") for h in hashes)
        pins[canonicalize_name(package)] = version
    return pins


# --- the stages ------------------------------------------------------------------------------------


def test_the_default_target_is_production_and_demo_is_the_other_final_stage() -> None:
    names = [name for name, _ in _stages()]
    assert names[-1] == "production" and "demo" in names


@pytest.mark.parametrize("target", TARGETS)
def test_a_final_stage_takes_only_the_virtualenv_onto_a_clean_python(target: str) -> None:
    chain = _chain(target)
    assert chain[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    copies = [args for name, args in chain if name == "COPY"]
    assert copies == [f"--from=venv-{target} /opt/voxgate /opt/voxgate"]
    run = " ".join(_of(target, "RUN"))
    assert not BUILD_TOOLS.search(run), run
    assert "pip" not in run and "apt-get" not in run


def test_the_base_image_is_pinned_by_digest_and_every_stage_starts_from_it_or_a_stage() -> None:
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", _global_arg("PYTHON_IMAGE"))
    names = {name for name, _ in _stages()}
    for name, instructions in _stages():
        base = instructions[0][1].split(" AS ")[0].strip()
        assert base == "${PYTHON_IMAGE}" or base in names, (name, base)


@pytest.mark.parametrize("target", TARGETS)
def test_dependencies_install_from_the_hashed_lock_before_the_source_and_voxgate_last(target: str) -> None:
    chain = _chain(f"venv-{target}")
    runs = [args for name, args in chain if name == "RUN"]
    # The venv has no pip or setuptools: the builder's pip installs into it.
    (deps,) = [run for run in runs if "--require-hashes" in run and "/opt/voxgate" in run]
    assert "venv --without-pip /opt/voxgate" in deps
    lock = "runtime" if target == "production" else "demo"
    assert f"--require-hashes --no-deps -r requirements/{lock}.txt" in deps
    # The dependency layer's inputs are the lock alone: no source is copied before it.
    copies = [args for name, args in chain[: [a for _, a in chain].index(deps)] if name == "COPY"]
    assert all("server" not in copy and "pyproject" not in copy for copy in copies), copies
    assert runs[-1] == "pip --python /opt/voxgate/bin/python install --no-deps --no-index /wheels/*.whl"
    # The wheel is built with the hashed build backend, without fetching another one.
    wheel = " ".join(_of("wheel", "RUN"))
    assert "--require-hashes --no-deps -r requirements/build.txt" in wheel
    assert "pip wheel --no-deps --no-build-isolation" in wheel


def test_the_image_carries_oci_labels_and_its_version_is_the_packages() -> None:
    labels = " ".join(_of("production", "LABEL"))
    for key in ("title", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    args = dict(arg.split("=", 1) for arg in _of("production", "ARG"))
    assert args["VERSION"] == version


# --- the locks -------------------------------------------------------------------------------------


def test_the_runtime_lock_satisfies_the_packages_dependencies_and_leaves_the_demo_stack_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, demo = _lock("runtime"), _lock("demo")
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in runtime, f"{name} is a dependency but not in requirements/runtime.txt"
        assert requirement.specifier.contains(runtime[name], prereleases=True), (name, runtime[name])
    assert not DEMO_ONLY & set(runtime)
    for spec in project["optional-dependencies"]["demo"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(demo[canonicalize_name(requirement.name)], prereleases=True)
    # One resolution: the demo lock is the runtime lock plus the audio stack, same versions.
    assert {name: version for name, version in demo.items() if name in runtime} == runtime
    assert set(demo) - set(runtime) >= DEMO_ONLY


def test_the_build_lock_pins_the_build_backend() -> None:
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    locked = _lock("build")
    for spec in build_system["requires"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(locked[canonicalize_name(requirement.name)])


# --- what the chart relies on ----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_image_runs_voxgate_serve_as_the_charts_non_root_user(target: str) -> None:
    (user,) = _of(target, "USER")
    uid, _, gid = user.partition(":")
    security = chart_values()["podSecurityContext"]
    # Numeric, or Kubernetes' runAsNonRoot cannot verify it.
    assert (int(uid), int(gid)) == (security["runAsUser"], security["runAsGroup"])
    assert int(uid) != 0
    (entrypoint,) = _of(target, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["voxgate", "serve"]
    # The chart passes no command or args: the image's entrypoint is what runs.
    container = render().container()
    assert "command" not in container and "args" not in container


def test_image_listens_on_all_interfaces_at_the_exposed_port_and_writes_no_bytecode() -> None:
    env = " ".join(_of("production", "ENV"))
    port = chart_values()["containerPort"]
    assert f"VOXGATE_LISTEN=0.0.0.0:{port}" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert _of("production", "EXPOSE") == [str(port)]


def test_dockerignore_keeps_the_build_context_to_the_package_and_its_locks() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # allow-list: .venv, node_modules, .git and tests stay out
    assert {"!pyproject.toml", "!server/", "!requirements/"} <= set(lines)
