"""``make bench``: voxgate's first-packet delay (synthesis) and time to first token (generation)
against the direct floor, side by side.

One run, one upstream (the embedded one, as its own process, with a latency
profile), one text set. For each concurrency level:

* **direct**: the load generator speaks the DashScope protocol itself on
  WebSockets it opened beforehand, one per concurrent stream: the floor.
* **voxgate**: the same tasks through a voxgate server process (gRPC, warm pool).

Printed: p50/p99 first-packet delay of each, what voxgate adds, and the reuse
ratio (requests that paid no upstream connect, counted at the upstream). Then the
same for generation (:mod:`bench.generation`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import secrets
import sys
import time
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection, connect

from bench import generation
from bench.common import Sample, closed_loop, summarize, upstream_stats
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate.tts.protocol import SynthesisParams, SynthesisTask, TaskFinished, TaskStarted

TEXTS = (
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "voxgate keeps upstream connections warm.",
    "First packets should arrive quickly.",
)
PARAMS = SynthesisParams(model="cosyvoice-v3-flash", voice="longanyang", format="pcm", sample_rate=16000)


# --- processes ------------------------------------------------------------------------------


class Child:
    """A voxgate command as a child process; :meth:`start` returns its announced address."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, ready_prefix: str) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxgate.cli", *self.args,
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            while line := (await self.proc.stdout.readline()).decode():
                if line.startswith(ready_prefix):
                    return line[len(ready_prefix) :].strip()
        raise RuntimeError(f"voxgate {self.args[0]} exited before it was ready")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


# --- the two clients -------------------------------------------------------------------------


async def direct_task(ws: ClientConnection, text: str) -> Sample:
    """One task on a pre-opened socket; first packet timed from run-task to the first audio."""
    task = SynthesisTask(PARAMS)
    started = time.perf_counter()
    first_packet_ms = -1.0
    await ws.send(task.run_task())
    while not isinstance(task.receive_text(str(await ws.recv())), TaskStarted):
        pass
    await ws.send(task.continue_task(text))
    await ws.send(task.finish_task())
    while True:
        frame = await ws.recv()
        if isinstance(frame, bytes):
            if first_packet_ms < 0:
                first_packet_ms = (time.perf_counter() - started) * 1000
            task.receive_audio(frame)
        elif isinstance(task.receive_text(frame), TaskFinished):
            return Sample(first_packet_ms, True)


async def direct_on(sockets: Sequence[ClientConnection], slot: int, text: str) -> Sample:
    return await direct_task(sockets[slot], text)


async def voxgate_task(client: Client, text: str) -> Sample:
    started = time.perf_counter()
    first_packet_ms = -1.0
    request = speech_pb2.SynthesizeRequest(
        text=text, format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=PARAMS.sample_rate
    )
    try:
        async for item in client.stream(request, timeout_s=30):
            if isinstance(item, bytes) and first_packet_ms < 0:
                first_packet_ms = (time.perf_counter() - started) * 1000
    except Exception:
        return Sample(first_packet_ms, False)
    return Sample(first_packet_ms, True)


async def run(args: argparse.Namespace) -> None:
    key = "sk-bench-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_"))}
    upstream = Child(
        "dev-upstream", "--port", "0",
        "--connect-delay-ms", str(args.connect_delay_ms),
        "--first-packet-delay-ms", str(args.first_packet_delay_ms),
        "--rtf", str(args.rtf),
        "--generation-first-byte-delay-ms", str(args.generation_first_byte_delay_ms),
        "--token-interval-ms", str(args.token_interval_ms),
        env={**env, "DASHSCOPE_API_KEY": key},
    )  # fmt: skip
    ws_url = await upstream.start("voxgate dev-upstream listening on ")
    http_base = ws_url.replace("ws://", "http://").split("/api-ws/")[0]
    pool_size = max(args.concurrency)
    server = Child(
        "serve", "--listen", "127.0.0.1:0", "--pool-max-size", str(pool_size),
        "--pool-max-concurrent-connects", "16", "--log-level", "WARNING",
        env={**env, "DASHSCOPE_API_KEY": key, "DASHSCOPE_WEBSOCKET_BASE_URL": ws_url,
             "DASHSCOPE_HTTP_BASE_URL": f"{http_base}/api/v1",
             "VOXGATE_DEFAULT_GENERATION_MODEL": generation.MODEL},
    )  # fmt: skip
    try:
        address = await server.start("voxgate listening on ")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(
            f"upstream profile: connect +{args.connect_delay_ms} ms,"
            f" first packet +{args.first_packet_delay_ms} ms, rtf {args.rtf};"
            f" voxgate pool size {pool_size}; text set of {len(TEXTS)}"
        )
        print()
        print(f"{'conc':>5} {'reqs':>5} | {'direct p50':>10} {'p99':>8} | {'voxgate p50':>11} {'p99':>8} |"
              f" {'added p50':>9} {'p99':>8} | {'ratio p50':>9} | {'errors':>6} | {'reuse':>6}")  # fmt: skip
        headers = {"Authorization": f"Bearer {key}"}
        async with Client(address) as client:
            await closed_loop(4, 8, TEXTS, lambda _slot, text: voxgate_task(client, text))  # warm caches
            for concurrency in args.concurrency:
                requests = max(args.requests, concurrency * args.rounds)
                sockets = [
                    await connect(ws_url, additional_headers=headers, compression=None, proxy=None)
                    for _ in range(concurrency)
                ]
                direct = await closed_loop(
                    concurrency, requests, TEXTS, functools.partial(direct_on, sockets)
                )
                for ws in sockets:
                    await ws.close()
                before = upstream_stats(http_base)
                through = await closed_loop(
                    concurrency, requests, TEXTS, lambda _slot, text: voxgate_task(client, text)
                )
                after = upstream_stats(http_base)
                opened = after["connections_opened"] - before["connections_opened"]
                reuse = 1 - opened / requests
                d50, d99, _ = summarize(direct)
                v50, v99, errors = summarize(through)
                print(
                    f"{concurrency:>5} {requests:>5} | {d50:>8.1f}ms {d99:>6.1f}ms |"
                    f" {v50:>9.1f}ms {v99:>6.1f}ms | {v50 - d50:>7.1f}ms {v99 - d99:>6.1f}ms |"
                    f" {v50 / d50:>8.2f}x | {errors:>6.1%} | {reuse:>6.1%}"
                )
            print()
            print("direct: the load generator on pre-opened upstream sockets (the floor);")
            print("voxgate: the same tasks through gRPC and voxgate's warm pool, client-side timing.")
            print("reuse: requests that opened no upstream connection, counted at the upstream.")
            print()
            await generation.run(client, http_base, key, args)
    finally:
        await server.stop()
        await upstream.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--requests", type=int, default=100, help="requests per level, at least")
    parser.add_argument(
        "--rounds", type=int, default=6, help="requests per level, at least rounds x concurrency"
    )
    parser.add_argument("--connect-delay-ms", type=int, default=100)
    parser.add_argument("--first-packet-delay-ms", type=int, default=150)
    parser.add_argument("--rtf", type=float, default=0.0)
    parser.add_argument(
        "--generation-first-byte-delay-ms", type=int, default=50, help="the local model's 'prefill' time"
    )
    parser.add_argument("--token-interval-ms", type=float, default=5.0)
    parser.add_argument(
        "--generation-requests",
        type=int,
        default=60,
        help="generation requests per level, at least (and at least 20 x concurrency)",
    )
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
