"""``voxgate serve --workers N``: N server processes on one port, each with its own pool.

One Python process runs one event loop on one core; past that, the kernel spreads
incoming connections over N processes that listen on the same port with
``SO_REUSEPORT`` (Linux). This parent starts the workers (``voxgate serve`` with the
same settings), prints ``voxgate listening on HOST:PORT`` once all of them listen,
forwards SIGTERM/SIGINT so each drains as a single server would, and exits when
they have. If a worker dies on its own, the parent stops the others and exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Mapping, Sequence

from voxgate import config

log = logging.getLogger(__name__)

WORKER_ENV = "VOXGATE_WORKER_INDEX"
"""Set by the parent in each worker's environment (0..N-1): serve, do not supervise."""
READY_PREFIX = "voxgate listening on "
READY_TIMEOUT_S = 120.0


class WorkerFailed(RuntimeError):
    """A worker exited before it listened (its own error went to stderr)."""


def is_worker(environ: Mapping[str, str]) -> bool:
    return WORKER_ENV in environ


def lift_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as Go programs do at start; return (old, new).

    Every pooled upstream connection and every client connection is a file descriptor;
    a pool of 1000 does not fit the soft limit of 1024 many systems start processes with.
    Workers inherit the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return soft, hard
    return soft, soft


def reserve_port(listen: str) -> tuple[socket.socket, str]:
    """Bind ``listen`` with SO_REUSEPORT (port 0: a free one) and return the socket and HOST:PORT.

    The socket never listens, so it takes no connections; holding it while the
    workers bind keeps the port from going to anyone else. Close it once they listen.
    """
    host, _, port = listen.rpartition(":")
    bare = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(bare, int(port), type=socket.SOCK_STREAM)[0]
    reservation = socket.socket(family, kind, proto)
    try:
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind(address)
    except OSError:
        reservation.close()
        raise
    return reservation, f"{host}:{reservation.getsockname()[1]}"


def worker_args(flags: Mapping[str, str | None], listen: str) -> list[str]:
    """The ``voxgate serve`` flags of a worker: the parent's own, with the resolved address."""
    args = []
    for spec in config.SETTINGS:
        value = flags.get(spec.name)
        if value is not None and spec.name != "listen":
            args += [spec.flag, value]
    return [*args, "--listen", listen]


async def supervise(settings: config.Settings, flags: Mapping[str, str | None]) -> int:
    """Run ``settings.workers`` workers until a signal (exit 0 once they drained) or a worker dies (1)."""
    try:
        reservation, listen = reserve_port(settings.listen)
    except OSError as exc:
        raise config.ConfigError("VOXGATE_LISTEN", f"cannot listen on {settings.listen}: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    args = worker_args(flags, listen)
    workers = [await _spawn(index, args) for index in range(settings.workers)]
    drains: list[asyncio.Task[bytes]] = []
    try:
        with reservation:
            async with asyncio.timeout(READY_TIMEOUT_S):
                drains = list(await asyncio.gather(*(_wait_ready(worker) for worker in workers)))
        print(f"{READY_PREFIX}{listen}", flush=True)
        log.info("%d workers listening on %s", len(workers), listen)
        exited = [asyncio.ensure_future(worker.wait()) for worker in workers]
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, *exited], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        died = not stop.is_set()
        if died:
            log.error("a worker exited on its own; stopping the others")
    except BaseException:
        await _stop_all(workers)
        raise
    # A second signal goes on to the workers as their second one: they stop at once.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _signal_all, workers)
    codes = await _stop_all(workers)
    await asyncio.gather(*drains)
    return 1 if died or any(codes) else 0


async def _spawn(index: int, args: Sequence[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxgate.cli", "serve", *args,
        env={**os.environ, WORKER_ENV: str(index)}, stdout=asyncio.subprocess.PIPE,
        # Their own process group: a Ctrl-C reaches the parent only, which passes each signal on
        # once (a worker that also got the terminal's SIGINT would take it for a second signal).
        process_group=0,
    )  # fmt: skip


async def _wait_ready(worker: asyncio.subprocess.Process) -> asyncio.Task[bytes]:
    """Wait for the worker's ready line; return a task that drains the rest of its stdout."""
    assert worker.stdout is not None
    while line := (await worker.stdout.readline()).decode():
        if line.startswith(READY_PREFIX):
            return asyncio.create_task(worker.stdout.read())
    raise WorkerFailed(f"worker {worker.pid} exited before listening (its error is above)")


async def _stop_all(workers: Sequence[asyncio.subprocess.Process]) -> list[int]:
    """SIGTERM every live worker (each drains within its grace period) and collect exit codes."""
    _signal_all(workers)
    return list(await asyncio.gather(*(worker.wait() for worker in workers)))


def _signal_all(workers: Sequence[asyncio.subprocess.Process]) -> None:
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
