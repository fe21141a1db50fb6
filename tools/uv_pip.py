"""Run ``uv pip`` with the package sources pip is configured with on this machine.

uv reads no pip configuration (neither ``pip.conf`` nor ``PIP_*`` variables), so on a machine
whose pip is pointed at a mirror, extra indexes, local wheels or a constraints file, a bare
``uv pip install`` would resolve against other sources than ``pip install`` does. This script
asks pip for its effective configuration (``pip config list``, which includes ``PIP_*``
variables) and passes the same sources to uv as flags:

    index-url        -> --default-index        extra-index-url -> --index (one per URL, last first)
    find-links       -> --find-links           constraint      -> --constraints
    no-index         -> --no-index             trusted-host    -> --allow-insecure-host
    pre              -> --prerelease allow
    cert             -> SSL_CERT_FILE          timeout         -> UV_HTTP_TIMEOUT

plus ``--index-strategy unsafe-best-match``: pip takes the best version across all its indexes,
while uv by default stops at the first index that has a package at all (a mirror holding an
older release would then fail to resolve). Any other install-affecting pip setting is named on
stderr rather than silently dropped; ``make setup INSTALLER=pip`` uses pip itself.

Usage (from the Makefile): ``.venv/bin/python tools/uv_pip.py UV install -e '.[dev]'`` where UV is
the uv executable; it installs into the interpreter that runs this script.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence

# pip's precedence: [global] < [install] < PIP_* variables (shown by `pip config list` as ":env:").
_SECTIONS = ("global", "install", ":env:")
# Settings that change nothing about which files get installed.
_NO_EFFECT = frozenset(
    {
        "cache-dir",
        "disable-pip-version-check",
        "no-cache-dir",
        "no-color",
        "no-input",
        "no-warn-script-location",
        "progress-bar",
        "quiet",
        "require-virtualenv",
        "retries",
        "root-user-action",
        "verbose",
    }
)


def pip_config(python: str) -> dict[str, str]:
    """The effective pip settings of ``python``'s pip, by option name (highest precedence wins)."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"], check=True, capture_output=True, text=True
    ).stdout
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, quoted = line.partition("=")
        section, dot, option = key.rpartition(".")
        if not (sep and dot) or section not in _SECTIONS:
            continue
        found.setdefault(option, {})[section] = str(ast.literal_eval(quoted))
    return {
        option: next(by_section[s] for s in reversed(_SECTIONS) if s in by_section)
        for option, by_section in found.items()
    }


def uv_arguments(config: Mapping[str, str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Flags and environment for ``uv pip`` that match ``config``, and the settings left out."""
    flags = ["--index-strategy", "unsafe-best-match"]
    env: dict[str, str] = {}
    ignored: list[str] = []
    for option, value in config.items():
        values = value.split()
        if option == "index-url":
            flags += ["--default-index", value]
        elif option == "extra-index-url":
            # pip weighs every index alike and, for one version, takes the most specific wheel
            # from any of them; uv takes that version from the first index that has it. Mirrors
            # list their fuller index last (here /opt/pypi-more: soundfile's manylinux wheel with
            # libsndfile inside, where the first holds only its pure-Python wheel, which needs a
            # system library), so the extra indexes go to uv in reverse: last first.
            flags += [flag for url in reversed(values) for flag in ("--index", url)]
        elif option == "find-links":
            flags += [flag for location in values for flag in ("--find-links", location)]
        elif option == "constraint":
            flags += [flag for path in values for flag in ("--constraints", path)]
        elif option == "trusted-host":
            flags += [flag for host in values for flag in ("--allow-insecure-host", host)]
        elif option == "no-index":
            if _true(value):
                flags.append("--no-index")
        elif option == "pre":
            if _true(value):
                flags += ["--prerelease", "allow"]
        elif option == "cert":
            env["SSL_CERT_FILE"] = value
        elif option in ("timeout", "default-timeout"):
            env["UV_HTTP_TIMEOUT"] = value
        elif option not in _NO_EFFECT:
            ignored.append(f"{option}={value}")
    return flags, env, ignored


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print(f"usage: {sys.argv[0]} UV_EXECUTABLE PIP_COMMAND [ARGS...]", file=sys.stderr)
        return 2
    uv, command, *rest = argv
    flags, env, ignored = uv_arguments(pip_config(sys.executable))
    if ignored:
        print(
            f"uv_pip: pip settings with no uv equivalent here, not applied: {', '.join(ignored)}",
            file=sys.stderr,
        )
    # An explicit SSL_CERT_FILE / UV_HTTP_TIMEOUT in the environment wins over pip's.
    env = {name: value for name, value in env.items() if name not in os.environ}
    args = [uv, "pip", command, "--python", sys.executable, *flags, *rest]
    print(f"uv_pip: pip's sources for uv: {shlex.join(flags)}", file=sys.stderr)
    os.execvpe(uv, args, {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
