"""Speech: first-packet delay, reuse and capacity of voxgate next to the other ways to reach the upstream.

One run, one upstream process (the embedded one, with a latency profile), one text set.
At each concurrency level, one after the other, each with fresh processes:

* **(a) voxgate**: ``voxgate serve`` with a warm pool as large as the level, through gRPC;
* **(a2) voxgate x2**: the same with ``--workers 2`` (two processes on one port, a pool each);
* **(b) voxgate, no pool**: the same server configured to open a connection for every
  request and close it after (``min_idle 0``, connection lifetime 1 ms);
* **(c) vendor SDK pool**: ``dashscope``'s ``SpeechSynthesizerObjectPool`` (size: the level,
  at most 100, its limit) driven by one thread per stream, straight to the upstream;
* **(d) direct**: the load generator speaking the protocol on sockets it opened before the
  clock started, straight to the upstream: the floor.

Client-side timing in every variant: from the request (before any pool borrow) to the
first audio bytes in the caller's hands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import procs
from bench.loadgen import MODEL, SAMPLE_RATE, TEXTS, VOICE
from bench.stats import Costs, LevelResult, Sample, summarize
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc
from voxgate.workers import lift_open_files_limit

VARIANTS = {
    "a": "voxgate (warm pool)",
    "a2": "voxgate --workers 2",
    "b": "voxgate, no pool",
    "c": "vendor SDK pool",
    "d": "direct (floor)",
}
SHORT_LEVELS = (1, 20)
FULL_LEVELS = (1, 10, 100, 500, 1000)
GRPC_CHANNELS = 16
GO_LOADGEN = Path(__file__).resolve().parents[1] / "build" / "go" / "bin" / "voxgate-go"
"""`voxgate-go load --bench` (make clients builds it): the load generator with --loadgen go."""


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """How the embedded upstream behaves in the benchmark: the flags it is started with."""

    connect_delay_ms: int = 100
    """WebSocket upgrade answered this late: TCP + TLS + the service's handshake."""
    first_packet_delay_ms: int = 150
    """Least time from the text reaching the upstream to the first audio frame."""
    rtf: float = 0.5
    """Audio paced at half real time: 1 s of audio takes 0.5 s to arrive."""
    chunk_ms: int = 100

    def flags(self) -> list[str]:
        return [
            "--connect-delay-ms", str(self.connect_delay_ms),
            "--first-packet-delay-ms", str(self.first_packet_delay_ms),
            "--rtf", str(self.rtf),
            "--chunk-ms", str(self.chunk_ms),
        ]  # fmt: skip

    def describe(self) -> str:
        return (
            f"connect +{self.connect_delay_ms} ms, first packet +{self.first_packet_delay_ms} ms,"
            f" audio paced at rtf {self.rtf} in {self.chunk_ms} ms frames"
        )


# --- the parts --------------------------------------------------------------------------------


class Bench:
    """Holds the upstream and the settings shared by every level."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.profile = LatencyProfile(args.connect_delay_ms, args.first_packet_delay_ms, args.rtf)
        self.key = "sk-bench-" + secrets.token_hex(8)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_"))}
        self.env = {**base, "DASHSCOPE_API_KEY": self.key}
        self.upstream = procs.Child(
            "-m", "voxgate.cli", "dev-upstream", "--port", "0", *self.profile.flags(),
            env=self.env, name="dev-upstream",
        )  # fmt: skip
        self.ws_url = ""

    async def start(self) -> None:
        self.ws_url = await self.upstream.start("voxgate dev-upstream listening on ")

    async def stop(self) -> None:
        await self.upstream.stop()

    def upstream_connects(self) -> int:
        import urllib.request

        base = self.ws_url.replace("ws://", "http://").split("/api-ws/")[0]
        with urllib.request.urlopen(f"{base}/_dev/stats", timeout=10) as reply:
            return int(json.load(reply)["connections_opened"])

    def server(self, variant: str, concurrency: int) -> procs.Child:
        # Warming ramps up at 50 connects in flight; without a pool, as many as requests.
        connects = concurrency if variant == "b" else min(concurrency, 50)
        flags = [
            "--listen", "127.0.0.1:0", "--log-level", "WARNING",
            "--pool-max-size", str(concurrency), "--pool-max-concurrent-connects", str(connects),
        ]  # fmt: skip
        if variant == "a2":
            flags += ["--workers", "2"]
        if variant == "b":
            # Connect per request: nothing kept idle, and a connection outlives no task
            # (past its lifetime it is closed when it comes back, off the caller's path).
            flags += ["--pool-min-idle", "0", "--pool-max-lifetime-s", "0.001"]
        return procs.Child(
            "-m", "voxgate.cli", "serve", *flags,
            env={**self.env, "DASHSCOPE_WEBSOCKET_BASE_URL": self.ws_url}, name=f"voxgate ({variant})",
        )  # fmt: skip

    def loadgen(self, variant: str, target: str, concurrency: int, requests: int) -> procs.Child:
        kind = {"a": "grpc", "a2": "grpc", "b": "grpc", "c": "sdk", "d": "direct"}[variant]
        args = [
            "-m", "bench.loadgen", kind, "--target", target,
            "--concurrency", str(concurrency), "--requests", str(requests),
            "--channels", str(GRPC_CHANNELS), "--sdk-pool-size", str(min(concurrency, 100)),
            "--ramp-s", str(self.args.ramp_s),
        ]  # fmt: skip
        if self.args.rate:
            args += ["--rate", str(self.args.rate)]
        if kind == "grpc" and self.args.min_chunk_ms:
            args += ["--min-chunk-ms", str(self.args.min_chunk_ms)]
        if kind == "grpc" and self.args.loadgen == "go":
            return self.go_loadgen(variant, target, concurrency, requests)
        return procs.Child(*args, env=self.env, name=f"loadgen ({variant})")

    def go_loadgen(self, variant: str, target: str, concurrency: int, requests: int) -> procs.Child:
        """The same calls from `voxgate-go load --bench`: a Go gRPC client, cheaper in CPU."""
        if not GO_LOADGEN.exists():
            raise SystemExit(f"--loadgen go: {GO_LOADGEN} is not built; run `make clients`")
        args = [
            "load", "--bench", "--server", target, "--requests", str(requests),
            "--connections", str(GRPC_CHANNELS), "--format", "pcm", "--model", MODEL,
            "--voice", VOICE, "--sample-rate", str(SAMPLE_RATE),
            *(arg for text in TEXTS for arg in ("--text", text)),
        ]  # fmt: skip
        if self.args.rate:
            args += ["--rate", str(self.args.rate)]
        else:
            args += ["--concurrency", str(concurrency), "--ramp-s", str(self.args.ramp_s)]
        if self.args.min_chunk_ms:
            args += ["--min-chunk-ms", str(self.args.min_chunk_ms)]
        return procs.Child(*args, env=self.env, name=f"voxgate-go load ({variant})", program=str(GO_LOADGEN))

    # -- one level ---------------------------------------------------------------------------

    async def level(self, variant: str, concurrency: int, requests: int) -> LevelResult:
        server = None
        target = self.ws_url
        if variant in ("a", "a2", "b"):
            server = self.server(variant, concurrency)
            target = await server.start("voxgate listening on ")
            await wait_serving(target)
        loadgen = self.loadgen(variant, target, concurrency, requests)
        try:
            await loadgen.start("ready", timeout_s=300)
            # With --workers, each stats call may reach either worker: no before/after pairs there.
            counted = variant in ("a", "b")
            pool_before = await pool_stats(target) if counted else None
            gateway = procs.process_tree(server.pid) if server else []
            connects_before = self.upstream_connects()
            gateway_cpu = procs.tree_cpu_seconds(gateway)
            upstream_cpu = procs.cpu_seconds(self.upstream.pid)
            await loadgen.send_line("go")
            line = await loadgen.read_line_starting("result ", timeout_s=900)
            costs_gateway_cpu = procs.tree_cpu_seconds(gateway) - gateway_cpu
            costs_upstream_cpu = procs.cpu_seconds(self.upstream.pid) - upstream_cpu
            gateway_rss = procs.tree_rss_kib(gateway, peak=True)
            connects = self.upstream_connects() - connects_before
            pool_after = await pool_stats(target) if counted else None
        finally:
            await loadgen.stop()
            if server is not None:
                await server.stop()
        result: dict[str, Any] = json.loads(line[len("result ") :])
        samples = [Sample.from_row(row) for row in result["samples"]]
        costs = Costs(
            wall_s=result["wall_s"],
            client_cpu_s=result["cpu_s"],
            gateway_cpu_s=costs_gateway_cpu,
            upstream_cpu_s=costs_upstream_cpu,
            client_rss_kib=result["maxrss_kib"],
            gateway_rss_kib=gateway_rss,
            upstream_connects=connects,
            **pool_costs(pool_before, pool_after),
        )
        return summarize(variant, concurrency, samples, costs)

    # -- memory per idle warm connection -------------------------------------------------------

    async def idle_rss_per_connection(self, variant: str, small: int, large: int) -> float:
        """KiB of resident memory per idle pooled connection: RSS difference between two pool sizes."""
        rss = []
        for size in (small, large):
            if variant == "a":
                server = self.server("a", size)
                target = await server.start("voxgate listening on ")
                try:
                    await wait_serving(target)
                    await asyncio.sleep(1.0)  # let the last handshakes' buffers settle
                    rss.append(procs.rss_kib(server.pid))
                finally:
                    await server.stop()
            else:
                kind = "sdk" if variant == "c" else "direct"
                child = procs.Child(
                    "-m", "bench.loadgen", kind, "--target", self.ws_url, "--idle",
                    "--concurrency", str(size), "--requests", "0", "--sdk-pool-size", str(size),
                    env=self.env, name=f"idle ({variant})",
                )  # fmt: skip
                try:
                    await child.start("ready", timeout_s=300)
                    await asyncio.sleep(1.0)
                    rss.append(procs.rss_kib(child.pid))
                finally:
                    await child.stop()
        return (rss[1] - rss[0]) / (large - small)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


async def pool_stats(address: str) -> stats_pb2.PoolStats:
    """voxgate's own counters for its synthesis pool (with --workers: the worker this connection reached)."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
            stats_pb2.GetStatsRequest(), timeout=10
        )
    return next(pool for pool in reply.pools if pool.name == "tts")


def pool_costs(before: stats_pb2.PoolStats | None, after: stats_pb2.PoolStats | None) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    return {
        "pool_leases": after.leases - before.leases,
        "pool_warm_leases": after.warm_leases - before.warm_leases,
        "pool_peak_utilization": after.peak_utilization,
    }


async def wait_serving(address: str, timeout_s: float = 120.0) -> None:
    """Poll the health service until SERVING (the pool is warm)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)


# --- printing -------------------------------------------------------------------------------


HEADER = (
    f"{'conc':>5} {'variant':<20} {'reqs':>5} | {'p50 ms':>7} {'p99 ms':>7} | {'streams/s':>9}"
    f" {'audio s/s':>9} | {'errors':>6} | {'CPU ms/stream (client+gw)':>25} | {'RSS MiB':>7} | {'reuse':>6}"
)


def row(result: LevelResult) -> str:
    rss = result.gateway_rss_mib or result.client_rss_mib
    cpu = f"{result.cpu_ms_per_stream:.1f}"
    if result.gateway_cpu_ms_per_stream:
        cpu += f" ({result.client_cpu_ms_per_stream:.1f}+{result.gateway_cpu_ms_per_stream:.1f})"
    return (
        f"{result.concurrency:>5} {VARIANTS[result.variant]:<20} {result.requests:>5} |"
        f" {result.p50_ms:>7.1f} {result.p99_ms:>7.1f} | {result.streams_per_s:>9.1f}"
        f" {result.audio_s_per_s:>9.1f} | {result.error_rate:>6.1%} | {cpu:>25} |"
        f" {rss:>7.1f} | {result.reuse:>6.1%}"
    )


def ratios(results: Sequence[LevelResult]) -> list[str]:
    """The headline: what voxgate adds over the floor, and what it saves over (b) and (c)."""
    by_key = {(r.variant, r.concurrency): r for r in results}
    lines = []
    for concurrency in sorted({r.concurrency for r in results}):
        a, b, c, d = (by_key.get((v, concurrency)) for v in ("a", "b", "c", "d"))
        if a is None:
            continue
        parts = [f"c={concurrency}:"]
        if d is not None:
            parts.append(
                f"voxgate adds {a.p50_ms - d.p50_ms:+.1f} ms p50 / {a.p99_ms - d.p99_ms:+.1f} ms p99"
                " over direct"
            )
        if b is not None:
            parts.append(f"saves {b.p50_ms - a.p50_ms:.1f} ms p50 vs no pool ({b.p50_ms / a.p50_ms:.2f}x)")
        if c is not None:
            parts.append(
                f"p99 {a.p99_ms:.0f} vs SDK pool {c.p99_ms:.0f} ms ({c.p99_ms / a.p99_ms:.2f}x),"
                f" CPU/stream {a.cpu_ms_per_stream:.1f} vs {c.cpu_ms_per_stream:.1f} ms"
            )
        lines.append("  ".join(parts[:1]) + " " + "; ".join(parts[1:]))
    return lines


# --- entry ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=int, nargs="+", help=f"levels (default: {SHORT_LEVELS}; --full: {FULL_LEVELS})"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=sorted(VARIANTS), help="default: a b c d (--full adds a2)"
    )
    parser.add_argument("--requests", type=int, help="requests per level, at least (default 8; --full 24)")
    parser.add_argument("--rounds", type=int, help="requests per level >= rounds x concurrency (default 3)")
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=1.0,
        help="closed loop: workers start spread over this many seconds, not all at once (default 1)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: arrivals/s (a, a2, b, d only)")
    default = LatencyProfile()
    parser.add_argument("--connect-delay-ms", type=int, default=default.connect_delay_ms)
    parser.add_argument("--first-packet-delay-ms", type=int, default=default.first_packet_delay_ms)
    parser.add_argument("--rtf", type=float, default=default.rtf)
    parser.add_argument("--idle-rss", action="store_true", help="also measure RSS per idle warm connection")
    parser.add_argument(
        "--loadgen",
        choices=("python", "go"),
        default="python",
        help="voxgate variants' load generator: Python gRPC, or voxgate-go load (make clients)",
    )
    parser.add_argument(
        "--min-chunk-ms",
        type=int,
        default=0,
        help="voxgate variants: SynthesizeRequest.min_chunk_ms (0: unset)",
    )
    parser.add_argument(
        "--out", type=Path, help="write every result as JSON here (plots: python -m bench.report)"
    )


def resolve(args: argparse.Namespace) -> None:
    """Fill the defaults that depend on ``--full``."""
    full = bool(args.full)
    args.concurrency = args.concurrency or list(FULL_LEVELS if full else SHORT_LEVELS)
    args.variants = args.variants or (["d", "a", "a2", "b", "c"] if full else ["d", "a", "b", "c"])
    args.requests = args.requests or (24 if full else 8)
    args.rounds = args.rounds or 3
    args.idle_rss = args.idle_rss or full
    if full and args.out is None:
        args.out = Path("docs/bench/speech.json")
    if args.rate and "c" in args.variants:
        args.variants.remove("c")


async def run(args: argparse.Namespace) -> list[LevelResult]:
    resolve(args)
    # 1000 streams hold thousands of sockets across the processes; children inherit the limit.
    _, nofile = lift_open_files_limit()
    bench = Bench(args)
    load = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, open files limit {nofile}"
    )
    print(
        f"upstream profile: {bench.profile.describe()};"
        f" pools sized to the level; {GRPC_CHANNELS} gRPC channels"
    )
    print()
    print(HEADER)
    results: list[LevelResult] = []
    idle: dict[str, float] = {}
    started, started_wall = time.monotonic(), time.time()
    await bench.start()
    try:
        for concurrency in args.concurrency:
            requests = max(args.requests, concurrency * args.rounds)
            for variant in args.variants:
                result = await bench.level(variant, concurrency, requests)
                results.append(result)
                print(row(result), flush=True)
                if result.error_kinds:
                    print(f"{'':>27} errors: {result.error_kinds}", flush=True)
        if args.idle_rss:
            for variant, (small, large) in {"a": (1, 1000), "c": (1, 100), "d": (1, 1000)}.items():
                idle[variant] = await bench.idle_rss_per_connection(variant, small, large)
    finally:
        await bench.stop()
    print()
    for line in ratios(results):
        print(line)
    if idle:
        print(
            "RSS per idle warm connection: "
            + ", ".join(f"{VARIANTS[v]} {kib:.1f} KiB" for v, kib in idle.items() if math.isfinite(kib))
        )
    print(f"({time.monotonic() - started:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "cpu": _cpu_model(),
            "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started_wall)),
            "duration_s": round(time.monotonic() - started),
            "load_average_at_start": load,
            "load_average_at_end": os.getloadavg(),
            "profile": bench.profile.describe(),
            "connect_delay_ms": bench.profile.connect_delay_ms,
            "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "results": [r.to_json() for r in results],
            "idle_rss_kib_per_connection": idle,
        }
        args.out.write_text(json.dumps(payload, indent=1))
        print(f"results written to {args.out}")
        from bench import report  # matplotlib only when plotting

        for path in report.plot(
            results, args.out.parent, f"{payload['machine']}; upstream: {payload['profile']}"
        ):
            print(f"plot written to {path}")
    return results
