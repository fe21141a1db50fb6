"""``make soak``: many requests at high concurrency with random faults at ~1 %, then the books.

The second half of the requests runs beside an abuse mix (``bench/abuse.py``: stalled readers,
cancellers, bursts, oversized requests); the normal traffic's first-packet delay is reported for
both halves, with what voxgate refused or cut and why (``--no-abuse``: all quiet).

The real gateway and the embedded upstream run in this process (short timeouts, so faults
resolve in about a second). Faults rotate through every kind the upstream can inject (drops,
task-failed, throttling, half-open stalls, slow connects, before and after the first byte),
each hitting ~1 % of tasks or connections; ~1 % of callers also cancel mid-stream.

Printed: requests, completed, failed by fault, refused explicitly (``voxgate-refused``), failed
otherwise (must be 0), connections
leaked (must be 0), poisoned reuses (must be 0: ``Invalid action('run-task')`` at the
upstream), reuse ratio and resident memory. Exits 1 if a must-be-zero is not zero.

    python -m bench.soak                       # the short run CI does (~2,000 requests)
    python -m bench.soak --requests 100000     # a long one
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import grpc

from bench.abuse import AbuseBooks, run_abuse
from voxgate import config
from voxgate.app import App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

FAULT_KINDS = (
    Faults(drop_after_bytes=0),
    Faults(drop_after_bytes=4000),
    Faults(fail_after_bytes=0, fail_code="InternalError"),
    Faults(fail_after_bytes=4000, fail_code="InternalError"),
    Faults(throttle=True),
    Faults(stall_after_bytes=0),
    Faults(stall_after_bytes=4000),
    Faults(stall_after_handshake=True),
    Faults(connect_delay_ms=300),
)
TEXTS = ("Soak.", "Hello world, once more.", "The pool stays warm and clean under faults.")


@dataclass
class Books:
    requests: int = 0
    completed: int = 0
    failed_by_fault: int = 0
    failed_otherwise: int = 0
    cancelled_by_client: int = 0
    refused: int = 0
    """Refused explicitly by voxgate (RESOURCE_EXHAUSTED with ``voxgate-refused``): allowed under abuse."""
    statuses: Counter[str] | None = None
    phase: str = "quiet"
    first_packet_ms: dict[str, list[float]] = field(default_factory=dict)


async def one_request(client: Client, rng: random.Random, cancel_rate: float, books: Books) -> None:
    request = speech_pb2.SynthesizeRequest(
        text=rng.choice(TEXTS), format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=16000
    )
    cancel = rng.random() < cancel_rate
    received = 0
    summary: speech_pb2.SynthesisSummary | None = None
    call = client.speech.Synthesize(request, timeout=60)
    try:
        while isinstance(response := await call.read(), speech_pb2.SynthesizeResponse):
            if response.WhichOneof("content") == "summary":
                summary = response.summary
            else:
                received += len(response.audio)
                if cancel:
                    call.cancel()
                    books.cancelled_by_client += 1
                    books.failed_by_fault += 1
                    return
    except grpc.aio.AioRpcError as exc:
        assert books.statuses is not None
        details = exc.details() or ""
        books.statuses[f"{exc.code().name}: {details[:70]}"] += 1
        if is_injected(exc.code(), details, received):
            books.failed_by_fault += 1
        elif exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and refused_reason(exc):
            books.refused += 1
        else:
            books.failed_otherwise += 1
        return
    if summary is not None and summary.audio_bytes == received and received > 0:
        books.completed += 1
        books.first_packet_ms.setdefault(books.phase, []).append(summary.first_packet_delay_ms)
    else:
        books.failed_otherwise += 1  # a stream that ended without its summary, or short


def refused_reason(exc: grpc.aio.AioRpcError) -> str | None:
    value = dict(exc.trailing_metadata() or ()).get("voxgate-refused")
    return str(value) if value is not None else None


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else float("nan")


def is_injected(code: grpc.StatusCode, details: str, received: int) -> bool:
    """A failure an injected fault explains: after audio (no retry) or a throttle that persisted."""
    if code == grpc.StatusCode.UNAVAILABLE and f"interrupted after {received} bytes" in details:
        return True
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "Throttling" in details


async def rotate_faults(
    upstream: DevUpstream, probability: float, period_s: float, stop: asyncio.Event
) -> None:
    kinds = list(FAULT_KINDS)
    while not stop.is_set():
        for kind in kinds:
            upstream.set_faults(replace(kind, probability=probability))
            try:
                await asyncio.wait_for(stop.wait(), period_s)
            except TimeoutError:
                continue
            break
    upstream.set_faults(Faults())


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def soak(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    api_key = "sk-soak-" + secrets.token_hex(8)
    upstream = DevUpstream(UpstreamOptions(api_key=api_key, seed=args.seed))
    await upstream.start()
    settings = config.load(
        {
            "DASHSCOPE_API_KEY": api_key,
            "DASHSCOPE_WEBSOCKET_BASE_URL": upstream.ws_url,
            "VOXGATE_LISTEN": "127.0.0.1:0",
            "VOXGATE_POOL_MAX_SIZE": str(args.pool_size),
            "VOXGATE_POOL_ACQUIRE_TIMEOUT_S": "30",
            "VOXGATE_POOL_BACKOFF_MAX_S": "0.5",
            "VOXGATE_FRAME_TIMEOUT_S": "1",
            "VOXGATE_TASK_START_TIMEOUT_S": "1",
            "VOXGATE_CONNECT_TIMEOUT_S": "1",
            "VOXGATE_PING_INTERVAL_S": "0.5",
            "VOXGATE_PING_TIMEOUT_S": "1",
            "VOXGATE_MAX_ATTEMPTS": "4",
            "VOXGATE_LOG_LEVEL": "ERROR",
            "VOXGATE_MAX_CONCURRENT_RPCS": "96",
            "VOXGATE_WRITE_STALL_TIMEOUT_S": "2",
        }
    )
    app = App(settings)
    books = Books(statuses=Counter())
    started = time.perf_counter()
    rss_start = rss_mb()
    try:
        await app.start()
        await app.pool.wait_ready()
        stop_faults = asyncio.Event()
        faults = asyncio.create_task(
            rotate_faults(upstream, args.fault_rate, args.fault_period_s, stop_faults)
        )
        quiet_requests = args.requests if args.no_abuse else args.requests // 2
        abuse_books = AbuseBooks()
        opened_before_abuse = 0

        async def run_phase(count: int) -> None:
            queue = iter(range(count))

            async def worker(client: Client) -> None:
                for _ in queue:
                    books.requests += 1
                    await one_request(client, rng, args.fault_rate, books)

            async with Client(app.address) as client:
                await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))

        await run_phase(quiet_requests)
        if quiet_requests < args.requests:
            books.phase = "abuse"
            opened_before_abuse = upstream.stats()["connections_opened"]
            stop_abuse = asyncio.Event()
            abuse = asyncio.create_task(run_abuse(app.address, abuse_books, stop_abuse, stall_hold_s=4.0))
            await run_phase(args.requests - quiet_requests)
            stop_abuse.set()
            await abuse
        stop_faults.set()
        await faults
        elapsed_s = time.perf_counter() - started
        await quiet(app)
        stats = app.pool.stats()
    finally:
        await app.stop()
        rss_end = rss_mb()
    # Stalled sockets stop reading, so the upstream cannot see them close: they stay open
    # there until it stops. Every other connection voxgate opened must be closed by now.
    up = upstream.stats()
    leaked = up["connections_open"] - up["connections_stalled"]
    poisoned = up["invalid_action_errors"]
    await upstream.stop()

    print(f"requests            {books.requests}  ({args.concurrency} concurrent, {elapsed_s:.1f} s)")
    print(f"completed           {books.completed}")
    cancelled = books.cancelled_by_client
    print(f"failed by fault     {books.failed_by_fault}  (of them {cancelled} cancelled by the client)")
    print(f"failed otherwise    {books.failed_otherwise}  (must be 0)")
    print(f"connections leaked  {leaked}  (must be 0)")
    print(f"poisoned reuses     {poisoned}  (must be 0)")
    print(
        f"reuse ratio         {stats.reuse_ratio:.3f}  ({stats.leases} leases, {stats.created} connections)"
    )
    print(f"evictions           {dict(sorted(stats.evicted.items()))}")
    injected = {k: up[k] for k in ("tasks_failed", "connections_dropped", "connections_stalled")}
    print(f"injected (upstream) {injected}")
    print(f"resident memory     {rss_start:.0f} MB at start, {rss_end:.0f} MB at the end")
    print(f"refused explicitly  {books.refused}  (normal calls refused with voxgate-refused)")
    for phase, delays in books.first_packet_ms.items():
        print(
            f"first packet {phase:6s} p50 {statistics.median(delays):7.1f} ms  p99 {p99(delays):7.1f} ms"
            f"  ({len(delays)} normal calls)"
        )
    overload = app.overload
    print(f"overload refused    {dict(sorted(overload.refused.items()))}")
    print(
        f"overload cut        writes stalled {overload.writes_stalled}, salvaged {overload.salvaged},"
        f" salvage closed {overload.salvage_closed}"
    )
    for kind, outcomes in sorted(abuse_books.outcomes.items()):
        print(f"abuse {kind:14s} {dict(outcomes.most_common())}")
    if abuse_books.outcomes:
        cancels = abuse_books.outcomes.get("canceller", Counter())["cancelled after the first chunk"]
        opened = up["connections_opened"] - opened_before_abuse
        print(
            f"upstream reconnects {opened} during the abuse half ({cancels} cancels after the first chunk,"
            " plus the injected faults' and stalls' replacements)"
        )
    if books.failed_otherwise:
        assert books.statuses is not None
        for status, count in books.statuses.most_common(10):
            print(f"  {count:5d} x {status}")
    bad = books.failed_otherwise or leaked or poisoned or books.requests != args.requests
    print("SOAK FAILED" if bad else "soak passed")
    return 1 if bad else 0


async def quiet(app: App, timeout_s: float = 30.0) -> None:
    """Wait for the pool to settle back to its size (evictions and refills done)."""
    size = app.pool.config.effective_min_idle
    deadline = time.monotonic() + timeout_s
    while (stats := app.pool.stats()).idle != size or stats.connecting or stats.checking:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool did not settle back to {size} idle connections: {app.pool!r}")
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests at once (default: %(default)s)")
    parser.add_argument(
        "--pool-size", type=int, default=16, help="VOXGATE_POOL_MAX_SIZE (default: %(default)s)"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.01, help="share of tasks/connections hit (default: %(default)s)"
    )
    parser.add_argument(
        "--fault-period-s",
        type=float,
        default=1.0,
        help="seconds per fault kind in rotation (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--no-abuse", action="store_true", help="no abuse mix beside the second half of the requests"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the books are the output, not the per-call warnings
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
