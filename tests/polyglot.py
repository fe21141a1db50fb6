"""voxgate's command-line clients as processes: where they are built and how to run one.

``python`` is ``voxgate synth|generate`` itself (the reference the others follow); ``node``,
``go`` and ``java`` are the clients under clients/, built by ``make clients``.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness import child_env

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python": (sys.executable, "-m", "voxgate.cli"),
    "node": ("node", str(REPO / "clients/node/bin/voxgate-node.js")),
    "go": (str(REPO / "build/go/bin/voxgate-go"),),
    "java": (str(REPO / "build/java/bin/voxgate-java"),),
}
PROGRAMS = {"python": "voxgate", "node": "voxgate-node", "go": "voxgate-go", "java": "voxgate-java"}
"""The name each one prints before its messages ("voxgate-go synth: INVALID_ARGUMENT: ...")."""
BUILT = {
    "python": REPO / "server/voxgate/cli.py",
    "node": REPO / "clients/node/node_modules/.voxgate-installed",
    "go": REPO / "build/go/bin/voxgate-go",
    "java": REPO / "build/java/bin/voxgate-java",
}
POLYGLOT = ("go", "java", "node")
"""The clients under clients/: they load clients/service_config.json (round_robin and a
retryPolicy for UNAVAILABLE) and print ``generate --json``. Python's CLI has neither."""


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """One client's command line: ``await cli.run("synth", "Hello", "--server", address)``."""

    language: str

    @property
    def program(self) -> str:
        return PROGRAMS[self.language]

    async def run(
        self, *args: str, timeout_s: float = 60.0, cwd: Path | None = None, stdin: bytes | None = None
    ) -> Completed:
        proc = await asyncio.create_subprocess_exec(
            *COMMANDS[self.language],
            *args,
            env=child_env(),
            cwd=cwd,
            stdin=None if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            raise AssertionError(f"{self.language} {args[0]} did not finish in {timeout_s} s") from None
        assert proc.returncode is not None
        return Completed(proc.returncode, stdout.decode(), stderr.decode())


def built(language: str) -> Cli:
    if not BUILT[language].exists():
        pytest.fail(f"the {language} client is not built: run `make clients` (`make test` does)")
    return Cli(language)


@dataclass(frozen=True)
class Faulty:
    """``voxgate serve`` (one upstream attempt per call) on an upstream whose faults we switch."""

    address: str
    upstream_origin: str
    unreachable: str
    """A loopback address nobody listens on."""
    upstream_key: str
    """The upstream's key: its fault switch takes it, like its API (docs/security.md)."""

    async def set_faults(self, faults: dict[str, Any]) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"{self.upstream_origin}/_dev/faults",
                json=faults,
                headers={"Authorization": f"Bearer {self.upstream_key}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()

    async def upstream_stats(self) -> dict[str, int]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.upstream_origin}/_dev/stats") as response,
        ):
            stats: dict[str, int] = await response.json()
            return stats
