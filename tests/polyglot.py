"""The Node and Go clients as processes: where they are built and how to run one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from harness import child_env

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "node": ("node", str(REPO / "clients/node/bin/voxgate-node.js")),
    "go": (str(REPO / "build/go/bin/voxgate-go"),),
}
BUILT = {
    "node": REPO / "clients/node/node_modules/.voxgate-installed",
    "go": REPO / "build/go/bin/voxgate-go",
}


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """One client's command line: ``await cli.run("synth", "Hello", "--server", address)``."""

    language: str

    async def run(self, *args: str, timeout_s: float = 60.0, stdin: bytes | None = None) -> Completed:
        proc = await asyncio.create_subprocess_exec(
            *COMMANDS[self.language],
            *args,
            env=child_env(),
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
