"""StatsService and `voxgate stats`: reuse ratio and utilization of the running pool."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import pytest

from harness import API_KEY, Request, child_env, collect, gateway_settings, pool_back_to_size, running_gateway
from voxgate.app import App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc
from voxgate_dev import UpstreamOptions

SHORT = "Hello world, held for a moment."


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    # Paced at real time, so two streams are reliably in flight together (see the first test).
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    return {"VOXGATE_POOL_MAX_SIZE": 2}


async def get_stats(address: str) -> stats_pb2.PoolStats:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
            stats_pb2.GetStatsRequest(), timeout=10
        )
    [pool] = reply.pools
    return pool


async def test_stats_count_leases_reuse_and_the_peak(gateway: App, client: Client) -> None:
    before = await get_stats(gateway.address)
    assert (before.name, before.max_size, before.leases, before.peak_in_use) == ("tts", 2, 0, 0)
    for _ in range(3):
        await collect(client, Request(text="One."))
    # Two at once, each holding its connection mid-stream: the whole pool is in use.
    calls = [client.speech.Synthesize(Request(text=SHORT)) for _ in range(2)]
    for call in calls:
        first = await call.read()
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
    busy = await get_stats(gateway.address)
    assert (busy.in_use, busy.idle, busy.utilization) == (2, 0, 1.0)
    for call in calls:
        while await call.read() is not grpc.aio.EOF:
            pass
        assert await call.code() == grpc.StatusCode.OK
    pool = await get_stats(gateway.address)
    assert pool.leases == 5
    assert pool.warm_leases == 5 and pool.reuse_ratio == 1.0  # prewarmed: nobody paid a connect
    assert pool.reused_leases == 3  # each of the two connections' first lease was not a reuse
    assert pool.created == 2 and pool.connect_failures == 0 and dict(pool.evicted) == {}
    assert pool.serving and (pool.overflow_leases, pool.overflow_in_use) == (0, 0)
    assert (pool.in_use, pool.idle, pool.utilization) == (0, 2, 0.0)
    assert (pool.peak_in_use, pool.peak_utilization) == (2, 1.0)


async def test_voxgate_stats_prints_reuse_ratio_and_utilization(gateway: App, client: Client) -> None:
    await collect(client, Request(text="One."))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxgate.cli", "stats", "--server", gateway.address,
        env=child_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[0] == (
        "pool tts: serving, 2 idle (0 being pinged), 0 in use (+0 overflow), 0 connecting, 0 waiting, max 2"
    )
    assert lines[1].startswith("  reuse ratio 100.0% of 1 leases (target > 95 %)")
    assert lines[1].endswith(", 0 on overflow, 0 timed out")
    assert lines[2].startswith("  utilization 0% now, 50% at peak (1 of 2; target 60-80 % at peak)")
    assert lines[3] == "  connections opened 2, failed 0; evicted: none"


async def test_overload_counts_in_stats_and_voxgate_stats(upstream: Any) -> None:
    # One call at a time: a second is refused; the first, cancelled mid-stream, is salvaged.
    # The stats service itself is never refused, or an operator could not look during an overload.
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=2, VOXGATE_MAX_CONCURRENT_RPCS=1)
    async with running_gateway(settings) as app, Client(app.address) as client:
        holder = client.speech.Synthesize(Request(text=SHORT))
        first = await holder.read()
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await collect(client, Request(text="Me too."))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        async with grpc.aio.insecure_channel(app.address) as channel:
            reply = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
                stats_pb2.GetStatsRequest(), timeout=10
            )
        assert (reply.overload.in_flight, reply.overload.max_concurrent_rpcs) == (1, 1)
        assert dict(reply.overload.refused) == {"max_concurrent_rpcs": 1}
        holder.cancel()
        await pool_back_to_size(app)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxgate.cli", "stats", "--server", app.address,
            env=child_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, stderr.decode()
        lines = stdout.decode().splitlines()
        assert lines[4] == "overload: 0 calls in flight (limit 1); refused: max_concurrent_rpcs 1"
        assert lines[5] == (
            "  writes stalled 0; cancelled tasks salvaged 1, closed 0, salvaging now 0;"
            " task starts that waited for the rate limit 0"
        )
