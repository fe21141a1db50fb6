"""Tracing: what it costs, off vs on, in one run (``python -m bench tracing``; part of ``make bench``).

One embedded upstream process and two voxgate server processes side by side: one
with telemetry off (no ``OTEL_*`` endpoint: no interceptor, no exporter), one with
every request traced (``OTEL_TRACES_SAMPLER=always_on``) and metrics on, exporting
over OTLP/gRPC to a local receiver process (``python -m support.otlp``,
standing in for a collector). The same tasks run through both in alternating rounds,
so drift on a shared machine hits both alike.

Two upstream profiles (switched at run time through ``PUT /_dev/faults``): the
upstream's first packet delayed like DashScope's (+150 ms, as in ``python -m bench``),
where the 5 % target applies, and undelayed, the loopback floor, where the same
absolute cost is the largest share it can be. Printed per profile and concurrency:
first-packet delay p50/p99 at the client, voxgate's own share of it (its
``first_packet_delay_ms`` minus the upstream's), and the overhead of tracing on the
client-side p50. The spans the receiver got prove tracing was really on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import closed_loop
from bench.loadgen import TEXTS
from bench.procs import Child, cpu_seconds
from bench.stats import percentile
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2

TARGET_OVERHEAD = 0.05


@dataclass(frozen=True)
class Timing:
    client_first_packet_ms: float
    """Request sent to first audio chunk, at the client."""
    hop_ms: float
    """voxgate's own share of the first packet: RPC received to first audio, less the upstream's part."""


class Server(Child):
    """A voxgate server process that remembers its address and tells its CPU time."""

    address = ""

    async def start(self, ready_prefix: str, timeout_s: float = 120.0) -> str:
        self.address = await super().start(ready_prefix, timeout_s)
        return self.address

    def cpu_s(self) -> float:
        """User + system CPU seconds so far (Linux /proc)."""
        return cpu_seconds(self.pid)


def _with_tests_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``tests/`` on PYTHONPATH: the OTLP receiver is test support, not part of voxgate."""
    tests_dir = str(Path(__file__).resolve().parent.parent / "tests")
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, env.get("PYTHONPATH")]))}


async def timed_task(client: Client, text: str) -> Timing:
    request = speech_pb2.SynthesizeRequest(text=text, format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=16000)
    started = time.perf_counter()
    first_packet_ms = -1.0
    hop_ms = -1.0
    async for item in client.stream(request, timeout_s=30):
        if isinstance(item, bytes):
            if first_packet_ms < 0:
                first_packet_ms = (time.perf_counter() - started) * 1000
        else:
            hop_ms = item.first_packet_delay_ms - item.upstream_first_packet_delay_ms
    return Timing(first_packet_ms, hop_ms)


async def rounds(client: Client, concurrency: int, requests: int) -> list[Timing]:
    async def one(_slot: int, text: str) -> Timing:
        return await timed_task(client, text)

    return await closed_loop(concurrency, requests, TEXTS, one)


async def run(args: argparse.Namespace) -> None:
    key = "sk-bench-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_", "OTEL_"))}
    upstream = Child(
        "-m", "voxgate.cli", "dev-upstream", "--port", "0",
        env={**env, "DASHSCOPE_API_KEY": key}, name="dev-upstream",
    )  # fmt: skip
    ws_url = await upstream.start("voxgate dev-upstream listening on ")
    http_base = ws_url.replace("ws://", "http://").split("/api-ws/")[0]
    pool_size = str(max(args.concurrency))
    serve = (
        "-m",
        "voxgate.cli",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--pool-max-size",
        pool_size,
        "--log-level",
        "WARNING",
    )
    server_env = {**env, "DASHSCOPE_API_KEY": key, "DASHSCOPE_WEBSOCKET_BASE_URL": ws_url}
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "support.otlp", env=_with_tests_on_path(env), stdout=asyncio.subprocess.PIPE
    )
    assert receiver.stdout is not None
    endpoint = (await receiver.stdout.readline()).decode().rsplit(" ", 1)[-1].strip()
    traced_env = {
        **server_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
    }
    servers = {
        "off": Server(*serve, env=server_env, name="voxgate (tracing off)"),
        "on": Server(*serve, env=traced_env, name="voxgate (tracing on)"),
    }
    try:
        for child in servers.values():
            await child.start("voxgate listening on ")
        await measure(args, servers, http_base, key)
    finally:
        for child in servers.values():
            await child.stop()  # the traced one flushes its last spans on the way out
        await upstream.stop()
        receiver.send_signal(signal.SIGTERM)
        received = (await receiver.stdout.read()).decode().strip()
        await receiver.wait()
    print(f"\nreceiver: {received} (3 spans a traced request)")


async def measure(
    args: argparse.Namespace, servers: dict[str, Server], http_base: str, upstream_key: str
) -> None:
    print(
        f"{args.rounds} alternating rounds per side; tracing on = every request sampled and exported"
        " over OTLP/gRPC to a receiver process; tracing off = no OTEL_* endpoint"
    )
    print()
    print(f"{'upstream':>9} {'conc':>4} {'reqs':>4} | {'off p50':>9} {'p99':>8} | {'on p50':>9} {'p99':>8}"
          f" | {'overhead p50':>17} | {'voxgate off':>11} {'on':>7}"
          f" | {'cpu/req off':>11} {'on':>7}")  # fmt: skip
    clients = {name: Client(child.address) for name, child in servers.items()}
    try:
        for delay_ms in args.first_packet_delay_ms:
            set_first_packet_delay(http_base, upstream_key, delay_ms)
            for client in clients.values():  # warm both: first calls pay imports and caches
                await rounds(client, 4, 8)
            for concurrency in args.concurrency:
                per_round = max(concurrency, args.requests // args.rounds)
                timings: dict[str, list[Timing]] = {"off": [], "on": []}
                cpu_s = {"off": 0.0, "on": 0.0}
                for _ in range(args.rounds):
                    for name, client in clients.items():
                        cpu_before = servers[name].cpu_s()
                        timings[name] += await rounds(client, concurrency, per_round)
                        cpu_s[name] += servers[name].cpu_s() - cpu_before
                off, on = (summarize(timings[name]) for name in ("off", "on"))
                added_ms = on[0] - off[0]
                overhead = added_ms / off[0]
                verdict = "ok" if overhead < TARGET_OVERHEAD else "over"
                cpu_ms = {name: cpu_s[name] * 1000 / len(timings[name]) for name in cpu_s}
                print(
                    f"{f'+{delay_ms} ms':>9} {concurrency:>4} {len(timings['on']):>4} |"
                    f" {off[0]:>7.2f}ms {off[1]:>6.1f}ms | {on[0]:>7.2f}ms {on[1]:>6.1f}ms |"
                    f" {overhead:>+7.1%} {added_ms:>+6.2f}ms {verdict:<4} |"
                    f" {off[2]:>9.3f}ms {on[2]:>5.3f}ms | {cpu_ms['off']:>9.2f}ms {cpu_ms['on']:>5.2f}ms"
                )
    finally:
        for client in clients.values():
            await client.close()
    print()
    for line in (
        "upstream: the embedded upstream's added first-packet delay (+150 ms ~ DashScope's; +0: the floor).",
        "off/on: client-side first-packet delay; overhead: on vs off at p50 (target < 5 % at +150 ms).",
        "voxgate: its own share of the first packet, p50 (summary first_packet_delay_ms - upstream's).",
        "cpu/req: the server process's CPU time (user + system) per request.",
    ):
        print(line)


def set_first_packet_delay(http_base: str, upstream_key: str, delay_ms: int) -> None:
    """The upstream's fault switch takes the upstream's own key (docs/security.md)."""
    request = urllib.request.Request(
        f"{http_base}/_dev/faults",
        data=json.dumps({"first_packet_delay_ms": delay_ms}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {upstream_key}"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def summarize(samples: Sequence[Timing]) -> tuple[float, float, float]:
    client = [s.client_first_packet_ms for s in samples]
    return percentile(client, 50), percentile(client, 99), percentile([s.hop_ms for s in samples], 50)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=48, help="requests per side, profile and level")
    parser.add_argument(
        "--rounds", type=int, default=8, help="alternating rounds per side, profile and level"
    )
    parser.add_argument(
        "--first-packet-delay-ms", type=int, nargs="+", default=[150, 0], help="upstream profiles to run"
    )
