"""Helpers shared by the integration tests: start real parts, collect a stream."""

from __future__ import annotations

import asyncio
import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxgate import config
from voxgate.app import App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream

API_KEY = "sk-test-" + os.urandom(8).hex()
TEXT = "Hello world. This is voxgate, speaking through a warm pool of connections."
Request = speech_pb2.SynthesizeRequest


async def collect(
    client: Client, request: speech_pb2.SynthesizeRequest, timeout_s: float = 30
) -> tuple[bytes, speech_pb2.SynthesisSummary]:
    """All audio of one Synthesize call, and its summary."""
    sink = io.BytesIO()
    result = await client.synthesize(request, sink, timeout_s=timeout_s)
    return sink.getvalue(), result.summary


def gateway_settings(upstream: DevUpstream, api_key: str = API_KEY, **env: Any) -> config.Settings:
    environ = {
        "DASHSCOPE_API_KEY": api_key,
        "DASHSCOPE_WEBSOCKET_BASE_URL": upstream.ws_url,
        "DASHSCOPE_HTTP_BASE_URL": upstream.http_base_url,
        "VOXGATE_DEFAULT_GENERATION_MODEL": "local-echo",
        "VOXGATE_LISTEN": "127.0.0.1:0",
        "VOXGATE_POOL_MAX_SIZE": "8",
        "VOXGATE_DRAIN_GRACE_S": "2",
    }
    environ.update({key: str(value) for key, value in env.items()})
    return config.load(environ)


class running_gateway:
    """``async with running_gateway(settings) as app``: started, warm, then drained."""

    def __init__(self, settings: config.Settings, *, wait_ready: bool = True) -> None:
        self.app = App(settings)
        self.wait_ready = wait_ready

    async def __aenter__(self) -> App:
        await self.app.start()
        if self.wait_ready:
            await wait_serving(self.app.address)
        return self.app

    async def __aexit__(self, *exc_info: object) -> None:
        await self.app.stop()


async def wait_serving(address: str, timeout_s: float = 10.0) -> None:
    """Block on the health Watch stream until the server reports SERVING."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        async for reply in stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s):
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
    raise AssertionError("health stream ended before SERVING")


async def health_status(address: str, service: str = "") -> int:
    """One health Check (what a Kubernetes probe does)."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service)
        )
        return int(reply.status)


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` (cheap, synchronous) until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")
        await asyncio.sleep(0.02)


async def pool_back_to_size(app: App) -> None:
    """Wait until the pool is quiet and full again: every configured connection open and idle."""
    size = app.pool.config.effective_min_idle

    def full() -> bool:
        stats = app.pool.stats()
        return stats.idle == size and stats.in_use == stats.connecting == stats.overflow_in_use == 0

    await wait_until(full, f"pool back to {size} idle connections ({app.pool!r})")


class Process:
    """A voxgate command run as a real child process, its output captured.

    :meth:`start` returns once the process printed ``ready_prefix`` on stdout
    (read line by line in a thread, so no polling); :meth:`output` has all it
    printed so far on stdout and stderr.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self, ready_prefix: str, timeout_s: float = 30.0) -> str:
        """Start and return the rest of the ready line (e.g. the address)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voxgate.cli", *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready: queue.Queue[str] = queue.Queue()

        def pump(stream: IO[str], is_stdout: bool) -> None:
            for line in stream:
                self._lines.append(line)
                if is_stdout and line.startswith(ready_prefix):
                    ready.put(line[len(ready_prefix) :].strip())
            if is_stdout:
                ready.put("")

        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, is_stdout in ((self.proc.stdout, True), (self.proc.stderr, False)):
            thread = threading.Thread(target=pump, args=(stream, is_stdout), daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            rest = ready.get(timeout=timeout_s)
        except queue.Empty:
            rest = ""
        if not rest:
            self.kill()
            raise AssertionError(f"{self.args[0]} did not print {ready_prefix!r}:\n{self.output()}")
        return rest

    def output(self) -> str:
        return "".join(self._lines)

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait for the exit code, collect the remaining output."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 20.0) -> int:
        """Wait for the exit code (after a signal sent elsewhere), collect the remaining output."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout_s)
        self._close_pipes()
        return code

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._close_pipes()

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without DashScope settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_"))}
    env.update(extra)
    return env
