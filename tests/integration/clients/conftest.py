"""voxgate's command-line clients, run as the processes a user runs, against a real voxgate.

``served`` is ``voxgate serve`` on its embedded default (one process for the session).
``faulty`` is ``voxgate serve`` on ``voxgate dev-upstream`` run as a process of its own, so a
test can switch the upstream's faults between calls and read its counters. The clients are
built by ``make clients`` (a prerequisite of ``make test``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from harness import Process, child_env, wait_serving
from polyglot import POLYGLOT, Cli, Faulty, built

UPSTREAM_KEY = "sk-conformance-" + "0" * 16


@pytest.fixture(params=POLYGLOT)
def cli(request: pytest.FixtureRequest) -> Cli:
    """Each client under clients/ in turn."""
    return built(request.param)


@pytest.fixture(scope="session")
def served() -> Iterator[str]:
    """The address of ``voxgate serve`` running on its embedded default."""
    server = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2"], child_env())
    address = server.start("voxgate listening on ")
    asyncio.run(wait_serving(address, timeout_s=30))
    yield address
    code = server.terminate()
    assert code == 0, server.output()


@pytest.fixture(scope="session")
def faulty() -> Iterator[Faulty]:
    upstream = Process(["dev-upstream", "--port", "0"], child_env(DASHSCOPE_API_KEY=UPSTREAM_KEY))
    ws_url = upstream.start("voxgate dev-upstream listening on ")  # ws://127.0.0.1:PORT/api-ws/v1/inference
    origin = "http" + ws_url.removeprefix("ws").split("/api-ws/")[0]
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2", "--max-attempts", "1"],
        child_env(
            DASHSCOPE_API_KEY=UPSTREAM_KEY,
            DASHSCOPE_WEBSOCKET_BASE_URL=ws_url,
            DASHSCOPE_HTTP_BASE_URL=f"{origin}/api/v1",
            VOXGATE_DEFAULT_GENERATION_MODEL="local-echo",
            # Salvage off: a case whose caller gives up (a deadline) would otherwise keep one of
            # the pool's two connections for up to VOXGATE_SALVAGE_TIMEOUT_S, and the next cases
            # would meet a busy pool. The table tests the clients, not the salvage.
            VOXGATE_SALVAGE_TIMEOUT_S="0",
        ),
    )
    try:
        address = server.start("voxgate listening on ")
        asyncio.run(wait_serving(address, timeout_s=30))
        with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
            probe.bind(("127.0.0.1", 0))
            unreachable = f"127.0.0.1:{probe.getsockname()[1]}"
        yield Faulty(address, origin, unreachable, UPSTREAM_KEY)
        assert server.terminate() == 0, server.output()
    finally:
        server.kill()
        upstream.terminate()
