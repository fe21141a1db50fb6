"""Child processes of a benchmark, and what they cost: CPU seconds and resident memory from /proc.

Every part runs as its own process (upstream, voxgate, load generator), so each
one's CPU and memory can be read separately and nothing shares an event loop or a GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (its threads included), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    # Fields 14 and 15 (utime, stime) counted from 1, after "pid (comm)".
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int, *, peak: bool = False) -> int:
    """Resident memory of a live process (VmRSS, or its peak VmHWM), in KiB."""
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


class Child:
    """A Python module (or ``program``) as a child process; :meth:`start` returns its ready line's rest."""

    def __init__(self, *args: str, env: dict[str, str], name: str, program: str | None = None) -> None:
        self.program = program or sys.executable
        self.args = args
        self.env = env
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} not started")
        return self.proc.pid

    async def start(self, ready_prefix: str, timeout_s: float = 120.0) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            self.program, *self.args,
            env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=2**26,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self._stderr_task = asyncio.create_task(self.proc.stderr.read())
        try:
            line = await self.read_line_starting(ready_prefix, timeout_s)
        except BaseException:
            await self.stop()
            raise
        return line[len(ready_prefix) :].strip()

    async def read_line_starting(self, prefix: str, timeout_s: float) -> str:
        """Skip stdout lines until one starts with ``prefix``; raise if the process ends first."""
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while raw := await self.proc.stdout.readline():
                line = raw.decode()
                if line.startswith(prefix):
                    return line
        await self.proc.wait()
        raise RuntimeError(
            f"{self.name} exited ({self.proc.returncode}) before {prefix!r}:\n{await self.stderr()}"
        )

    async def send_line(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stderr(self) -> str:
        if self._stderr_task is None:
            return ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                return (await asyncio.shield(self._stderr_task)).decode(errors="replace")[-4000:]
        return ""

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(Exception):
                await self._stderr_task


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``voxgate serve --workers N`` runs N children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def tree_rss_kib(pids: list[int], *, peak: bool = False) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += rss_kib(pid, peak=peak)
    return total
