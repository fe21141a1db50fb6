"""``voxgate serve --workers 2``: two processes on one port, a pool each, both answering."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import API_KEY, TEXT, Process, child_env, wait_serving
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate_dev import DevUpstream

MAX_CHANNELS = 64
"""Each channel is a new TCP connection the kernel hashes to one worker; 64 all landing on
the same one of two has a chance of 2**-63."""


async def first_task_flags(address: str) -> list[bool]:
    """One call per fresh TCP connection until two calls ran the first task of their connection."""
    flags: list[bool] = []
    request = speech_pb2.SynthesizeRequest(text=TEXT, format=speech_pb2.AUDIO_FORMAT_PCM)
    for _ in range(MAX_CHANNELS):
        # A local subchannel pool: a new TCP connection, not one shared with the last channel.
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = speech_pb2_grpc.SpeechServiceStub(channel)
            replies = [reply async for reply in stub.Synthesize(request, timeout=60)]
        assert sum(len(reply.audio) for reply in replies) > 16000
        flags.append(not replies[-1].summary.connection_reused)
        if flags.count(True) == 2:
            break
    return flags


async def test_two_workers_share_one_port_and_both_answer(upstream: DevUpstream) -> None:
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--pool-max-size", "1"],
        child_env(DASHSCOPE_API_KEY=API_KEY, DASHSCOPE_WEBSOCKET_BASE_URL=upstream.ws_url),
    )
    address = await asyncio.to_thread(server.start, "voxgate listening on ", 60.0)
    try:
        flags = await first_task_flags(address)
    finally:
        code = await asyncio.to_thread(server.terminate)
    assert code == 0, server.output()
    # Pool size 1 in each worker and no connection ever replaced (2 opened in all): each
    # call that was the first task on its connection ran in a different worker.
    assert upstream.stats()["connections_opened"] == 2
    assert flags.count(True) == 2, f"only one worker answered {len(flags)} connections"
    assert server.output().count("voxgate.app: stopped") == 2


def test_a_single_server_does_not_share_its_port() -> None:
    # Without --workers, SO_REUSEPORT is off: a second server on a port that another
    # process holds with SO_REUSEPORT (as a worker would) fails instead of sharing it.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Process(["serve", "--listen", f"127.0.0.1:{port}", "--pool-max-size", "1"], child_env())
        with pytest.raises(AssertionError, match="Address already in use"):
            server.start("voxgate listening on ", 60.0)


LOW_SOFT_LIMIT = 64
"""Far fewer open files than the pool below needs: one socket per pooled connection."""


async def test_serve_lifts_a_low_soft_limit_on_open_files(upstream: DevUpstream) -> None:
    # `python -m voxgate.cli serve` after lowering the soft limit, as `ulimit -Sn 64` would; the
    # hard limit stays, so the server may lift it.
    lowered = (
        "import resource, runpy, sys;"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW_SOFT_LIMIT}, hard));"
        "sys.argv[0] = 'voxgate'; runpy.run_module('voxgate.cli', run_name='__main__', alter_sys=True)"
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", lowered,
        "serve", "--listen", "127.0.0.1:0", "--log-level", "WARNING",
        "--pool-max-size", "150", "--pool-max-concurrent-connects", "50",
        env=child_env(DASHSCOPE_API_KEY=API_KEY, DASHSCOPE_WEBSOCKET_BASE_URL=upstream.ws_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), 60)).decode()
        assert line.startswith("voxgate listening on "), line
        await wait_serving(line.split()[-1], timeout_s=60)  # all 150 pooled connections open
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(server.communicate(), 30)
    assert server.returncode == 0, stderr.decode()
    assert b"Too many open files" not in stderr


async def test_a_second_signal_to_the_parent_stops_the_workers_at_once() -> None:
    server = Process(
        # --dev-upstream-rtf 1.0: the stream runs for minutes; the 600 s grace outlasts the test.
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--pool-max-size",
            "1",
            "--drain-grace-s",
            "600",
            "--dev-upstream-rtf",
            "1.0",
        ],
        child_env(),
    )
    address = await asyncio.to_thread(server.start, "voxgate listening on ", 60.0)
    try:
        async with Client(address) as client:
            # On the stream's own channel (one TCP connection), the watch reports the stream's worker.
            watch = health_pb2_grpc.HealthStub(client.channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )
            while (await watch.read()).status != health_pb2.HealthCheckResponse.SERVING:
                pass
            call = client.speech.Synthesize(
                speech_pb2.SynthesizeRequest(text=" ".join([TEXT] * 40), format=speech_pb2.AUDIO_FORMAT_PCM)
            )
            first = await call.read()
            assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            server.proc.send_signal(signal.SIGTERM)  # passed on: the workers stop at once
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                while isinstance(await call.read(), speech_pb2.SynthesizeResponse):
                    pass
            assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
        code = await asyncio.to_thread(server.wait, 30)  # far less than the 600 s grace
    finally:
        server.kill()
    assert code == 0, server.output()
    assert server.output().count("voxgate.app: stopped") == 2
