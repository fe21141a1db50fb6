"""Generation: time to first token through voxgate vs straight to the upstream, and TCP
connections opened per 1000 requests (counted at the upstream).

``python -m bench generation`` starts the embedded upstream and a voxgate server as
processes, then for each concurrency level runs:

* **direct**: the load generator's own shared aiohttp session, streaming SSE from the
  embedded upstream with voxgate's :class:`~voxgate.generation.client.GenerationClient`: the floor.
* **voxgate**: the same prompts through ``GenerateStream`` (gRPC, voxgate's shared session).

Time to first token is client-side: request sent → first non-empty delta received.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import time

from bench.common import Sample, closed_loop, summarize, upstream_stats
from bench.procs import Child
from voxgate.client import Client
from voxgate.generation.client import GenerationClient
from voxgate.generation.protocol import GenerationParams, Message
from voxgate.generation.session import HttpConfig, open_session
from voxgate.generation.v1 import generation_pb2

MODEL = "local-echo"
PROMPTS = (
    "Say hello.",
    "Summarise the benefits of keeping connections alive.",
    "What is a warm pool?",
    "Count to five.",
)


async def direct_stream(client: GenerationClient, prompt: str) -> Sample:
    started = time.perf_counter()
    first_ms = -1.0
    params = GenerationParams(model=MODEL, messages=(Message("user", prompt),))
    try:
        async with contextlib.aclosing(client.stream(params)) as results:
            async for result in results:
                if result.text and first_ms < 0:
                    first_ms = (time.perf_counter() - started) * 1000
    except Exception:
        return Sample(first_ms, False)
    return Sample(first_ms, True)


async def voxgate_stream(client: Client, prompt: str) -> Sample:
    started = time.perf_counter()
    first_ms = -1.0
    request = generation_pb2.GenerateStreamRequest(
        messages=[generation_pb2.Message(role="user", content=prompt)]
    )
    try:
        async for piece in client.generate_stream(request, timeout_s=30):
            if piece.delta and first_ms < 0:
                first_ms = (time.perf_counter() - started) * 1000
    except Exception:
        return Sample(first_ms, False)
    return Sample(first_ms, True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, nargs="+", help="levels (default: 1 50)")
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


async def run(args: argparse.Namespace) -> None:
    """Start the upstream and a voxgate server as processes, then :func:`measure`."""
    args.concurrency = args.concurrency or [1, 50]
    key = "sk-bench-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_"))}
    env["DASHSCOPE_API_KEY"] = key
    upstream = Child(
        "-m", "voxgate.cli", "dev-upstream", "--port", "0",
        "--generation-first-byte-delay-ms", str(args.generation_first_byte_delay_ms),
        "--token-interval-ms", str(args.token_interval_ms),
        env=env, name="dev-upstream",
    )  # fmt: skip
    ws_url = await upstream.start("voxgate dev-upstream listening on ")
    http_base = ws_url.replace("ws://", "http://").split("/api-ws/")[0]
    server = Child(
        "-m", "voxgate.cli", "serve", "--listen", "127.0.0.1:0",
        "--pool-max-size", "1", "--log-level", "WARNING",
        env={**env, "DASHSCOPE_WEBSOCKET_BASE_URL": ws_url, "DASHSCOPE_HTTP_BASE_URL": f"{http_base}/api/v1",
             "VOXGATE_DEFAULT_GENERATION_MODEL": MODEL},
        name="voxgate",
    )  # fmt: skip
    try:
        address = await server.start("voxgate listening on ")
        async with Client(address) as client:
            await measure(client, http_base, key, args)
    finally:
        await server.stop()
        await upstream.stop()


async def measure(client: Client, http_base: str, key: str, args: argparse.Namespace) -> None:
    """``http_base``: the upstream's origin (``http://127.0.0.1:port``)."""
    print(
        f"generation: model {MODEL}, first byte +{args.generation_first_byte_delay_ms} ms,"
        f" {args.token_interval_ms} ms between tokens"
    )
    print()
    print(f"{'conc':>5} {'reqs':>5} | {'direct p50':>10} {'p99':>8} | {'voxgate p50':>11} {'p99':>8} |"
          f" {'added p50':>9} {'p99':>8} | {'errors':>6} | {'TCP conns / 1000 reqs':>21}")  # fmt: skip
    session = open_session(HttpConfig())
    try:
        direct_client = GenerationClient(session, base_url=f"{http_base}/api/v1", api_key=key)
        for concurrency in args.concurrency:
            requests = max(args.generation_requests, 20 * concurrency)
            direct = await closed_loop(
                concurrency, requests, PROMPTS, lambda _slot, prompt: direct_stream(direct_client, prompt)
            )
            before = upstream_stats(http_base)["generation_connections_opened"]
            through = await closed_loop(
                concurrency, requests, PROMPTS, lambda _slot, prompt: voxgate_stream(client, prompt)
            )
            opened = upstream_stats(http_base)["generation_connections_opened"] - before
            d50, d99, _ = summarize(direct)
            v50, v99, errors = summarize(through)
            print(
                f"{concurrency:>5} {requests:>5} | {d50:>8.1f}ms {d99:>6.1f}ms |"
                f" {v50:>9.1f}ms {v99:>6.1f}ms | {v50 - d50:>7.1f}ms {v99 - d99:>6.1f}ms |"
                f" {errors:>6.1%} | {opened * 1000 / requests:>21.1f}"
            )
    finally:
        await session.close()
    print()
    print("direct: the load generator's own kept-alive session straight to the upstream (the floor);")
    print(
        "voxgate: GenerateStream through gRPC and voxgate's shared session; time to first token, client-side."
    )
    print("TCP conns / 1000 reqs: new connections the upstream accepted for voxgate's calls, per 1000 calls.")
