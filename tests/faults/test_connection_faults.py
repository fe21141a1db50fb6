"""Fault matrix, connection faults: the upstream dies, restarts, goes half-open, cuts idle
sockets, connects slowly, or refuses voxgate. Real gateway, real embedded upstream.

Each test checks the request's outcome (all audio, or an explicit status), that the pool
returns to its configured size, and that nothing broken is lent afterwards (follow-up calls
succeed at the first attempt, and the upstream never saw ``Invalid action('run-task')``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from harness import (
    API_KEY,
    TEXT,
    Request,
    collect,
    gateway_settings,
    health_status,
    pool_back_to_size,
    running_gateway,
    wait_until,
)
from voxgate.app import LIVENESS_SERVICE, App
from voxgate.client import Client
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

PCM = speech_pb2.AUDIO_FORMAT_PCM
if TYPE_CHECKING:
    Call = grpc.aio.UnaryStreamCall[speech_pb2.SynthesizeRequest, speech_pb2.SynthesizeResponse]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


IDLE_CUT_S = 4.0


@pytest.fixture
async def upstream_cutting_idle() -> AsyncIterator[DevUpstream]:
    """An upstream that closes idle sockets after seconds, not the vendor's 60."""
    server = DevUpstream(UpstreamOptions(api_key=API_KEY, idle_timeout_s=IDLE_CUT_S))
    await server.start()
    yield server
    await server.stop()


async def nothing_broken_is_lent(
    app: App, client: Client, upstream: DevUpstream, calls: int = 8, most_attempts: int = 1
) -> None:
    """The pool is full again, and a round of calls each succeeds on its first connection."""
    await pool_back_to_size(app)
    results = await asyncio.gather(*(collect(client, Request(text="Still fine.")) for _ in range(calls)))
    assert all(audio and summary.attempts <= most_attempts for audio, summary in results)
    assert upstream.stats()["invalid_action_errors"] == 0


async def read_first_chunks(calls: list[Call]) -> list[int]:
    sizes = []
    for call in calls:
        first = await call.read()
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
        sizes.append(len(first.audio))
    return sizes


async def finish_with_error(call: Call, received: int) -> tuple[grpc.aio.AioRpcError, int]:
    """Read ``call`` to its end; it must end with an error status, never a summary."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while isinstance(response := await call.read(), speech_pb2.SynthesizeResponse):
            assert response.WhichOneof("content") == "audio", "a summary would hide the truncation"
            received += len(response.audio)
    return info.value, received


async def restart(upstream: DevUpstream, **faults: Any) -> DevUpstream:
    """A new upstream on the stopped one's port (a restarted service at the same address)."""
    options = replace(upstream.options, port=upstream.port, faults=replace(Faults(), **faults))
    again = DevUpstream(options)
    await again.start()
    return again


# --- the upstream goes away -----------------------------------------------------------------------


async def test_upstream_killed_mid_stream_fails_loudly_then_the_pool_refills(upstream: DevUpstream) -> None:
    paced = DevUpstream(replace(upstream.options, rtf=1.0))  # streams still running when it dies
    await paced.start()
    settings = gateway_settings(paced, VOXGATE_POOL_MAX_SIZE=4, VOXGATE_POOL_BACKOFF_MAX_S=0.5)
    async with running_gateway(settings) as app, Client(app.address) as client:
        calls = [client.speech.Synthesize(Request(text=TEXT, format=PCM)) for _ in range(3)]
        first_sizes = await read_first_chunks(calls)
        await paced.stop()
        for call, first in zip(calls, first_sizes, strict=True):
            error, received = await finish_with_error(call, first)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert f"interrupted after {received} bytes" in (error.details() or "")
        # While it is down, a new call fails fast and says why.
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await collect(client, Request(text="Anyone there?"))
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        back = await restart(paced)
        try:
            await nothing_broken_is_lent(app, client, back)
        finally:
            await back.stop()


async def test_upstream_restart_refills_with_connects_in_flight_never_above_the_cap(
    upstream: DevUpstream,
) -> None:
    settings = gateway_settings(
        upstream,
        VOXGATE_POOL_MAX_SIZE=8,
        VOXGATE_POOL_MAX_CONCURRENT_CONNECTS=2,
        VOXGATE_POOL_BACKOFF_MAX_S=0.5,
    )
    async with running_gateway(settings) as app, Client(app.address) as client:
        await upstream.stop()
        await wait_until(lambda: app.pool.stats().open == 0, "every pooled connection evicted")
        # Slow handshakes make the refill's connects overlap, so the cap is what bounds them.
        back = await restart(upstream, connect_delay_ms=200)
        try:
            await pool_back_to_size(app)
            assert back.stats()["connections_opened"] == 8
            assert back.stats()["handshakes_in_flight_max"] == 2
            assert await health_status(app.address) == SERVING  # an outage is not a rejection
            back.set_faults(Faults())
            await nothing_broken_is_lent(app, client, back)
        finally:
            await back.stop()


# --- half-open and idle sockets -----------------------------------------------------------------


async def test_half_open_idle_connections_are_evicted_by_ping_and_replaced(upstream: DevUpstream) -> None:
    # The first two connections go silent right after their handshake: no pongs, no FIN.
    upstream.set_faults(Faults(stall_after_handshake=True, times=2))
    settings = gateway_settings(
        upstream, VOXGATE_POOL_MAX_SIZE=2, VOXGATE_PING_INTERVAL_S=0.2, VOXGATE_PING_TIMEOUT_S=0.5
    )
    async with running_gateway(settings) as app, Client(app.address) as client:
        await wait_until(lambda: app.pool.stats().evicted.get("ping_timeout", 0) == 2, "two ping evictions")
        assert upstream.stats()["connections_stalled"] == 2
        await nothing_broken_is_lent(app, client, upstream)
        assert app.pool.stats().evicted.keys() == {"ping_timeout"}


async def test_half_open_mid_stream_ends_unavailable_with_the_bytes_delivered(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=4, VOXGATE_FRAME_TIMEOUT_S=1)
    async with running_gateway(settings) as app, Client(app.address) as client:
        upstream.set_faults(Faults(stall_after_bytes=8000, times=1))
        call = client.speech.Synthesize(Request(text=TEXT, format=PCM))
        error, received = await finish_with_error(call, 0)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert f"interrupted after {received} bytes" in (error.details() or "")
        assert "sent nothing for 1s" in (error.details() or "")
        # Before the first byte, the same silence is retried on another connection.
        upstream.set_faults(Faults(stall_after_bytes=0, times=1))
        audio, summary = await collect(client, Request(text="Retry me.", format=PCM))
        assert audio and summary.attempts == 2
        await nothing_broken_is_lent(app, client, upstream)


async def test_idle_cut_by_the_upstream_is_noticed_and_refilled(upstream_cutting_idle: DevUpstream) -> None:
    upstream = upstream_cutting_idle
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=4, VOXGATE_POOL_MAX_IDLE_S=30)
    async with running_gateway(settings) as app, Client(app.address) as client:
        await wait_until(lambda: upstream.stats()["idle_timeouts"] >= 4, "the upstream cut the idle sockets")
        await wait_until(lambda: app.pool.stats().evicted.get("closed", 0) >= 4, "the pool noticed")
        # The cuts go on every few seconds: a socket cut in the very moment it is lent costs
        # that call one retry before any audio, never its audio.
        await nothing_broken_is_lent(app, client, upstream, calls=4, most_attempts=2)


async def test_idle_connections_are_recycled_before_the_upstream_cuts_them(
    upstream_cutting_idle: DevUpstream,
) -> None:
    upstream = upstream_cutting_idle
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=4, VOXGATE_POOL_MAX_IDLE_S=IDLE_CUT_S / 3)
    async with running_gateway(settings) as app, Client(app.address) as client:
        await wait_until(lambda: app.pool.stats().evicted.get("idle", 0) >= 8, "two rounds of recycling")
        assert upstream.stats()["idle_timeouts"] == 0
        await nothing_broken_is_lent(app, client, upstream, calls=4)


# --- connecting -----------------------------------------------------------------------------------


async def test_connect_slower_than_connect_timeout_is_unavailable_then_recovers(
    upstream: DevUpstream,
) -> None:
    upstream.set_faults(Faults(connect_delay_ms=60_000))
    settings = gateway_settings(
        upstream,
        VOXGATE_POOL_MAX_SIZE=2,
        VOXGATE_CONNECT_TIMEOUT_S=0.3,
        VOXGATE_POOL_BACKOFF_MAX_S=0.5,
    )
    async with running_gateway(settings, wait_ready=False) as app, Client(app.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client, Request(text="Slow."))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "connect timed out after 0.3s" in (info.value.details() or "")
        assert await health_status(app.address) == NOT_SERVING
        upstream.set_faults(Faults())
        await nothing_broken_is_lent(app, client, upstream)
        assert await health_status(app.address) == SERVING


async def test_upstream_closing_new_connections_turns_not_serving_with_the_reason_then_recovers(
    upstream: DevUpstream,
) -> None:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=2, VOXGATE_POOL_BACKOFF_MAX_S=0.5)
    async with running_gateway(settings) as app, Client(app.address) as client:
        opened = upstream.stats()["connections_opened"]
        upstream.set_faults(
            Faults(close_after_handshake=True, fail_code="Arrearage", fail_message="Quota used up.")
        )
        # Whatever makes the pool reconnect (here: a discarded lease) meets the refusal.
        app.pool.release(await app.pool.acquire())
        await wait_until(lambda: app.pool.rejected_reason is not None, "the pool notices the refusal")
        assert "Arrearage: Quota used up." in (app.pool.rejected_reason or "")
        await wait_until(lambda: app.pool.stats().open == 1, "the refused connection gone")
        assert await health_status(app.address) == NOT_SERVING
        upstream.set_faults(Faults())
        await wait_until(lambda: app.pool.serving, "recovered", timeout_s=30)
        assert await health_status(app.address) == SERVING
        assert upstream.stats()["connections_opened"] > opened
        await nothing_broken_is_lent(app, client, upstream)


async def test_rejected_credentials_keep_health_not_serving(upstream: DevUpstream) -> None:
    settings = gateway_settings(
        upstream, api_key="sk-wrong", VOXGATE_POOL_MAX_SIZE=2, VOXGATE_POOL_BACKOFF_MAX_S=300
    )
    async with running_gateway(settings, wait_ready=False) as app, Client(app.address) as client:
        await wait_until(
            lambda: app.pool.rejected_reason is not None and app.pool.stats().connecting == 0,
            "the pool gives up on the key",
        )
        assert "401" in (app.pool.rejected_reason or "")
        assert await health_status(app.address) == NOT_SERVING
        # Liveness is the process, not the upstream: a rejected key must not restart pods.
        assert await health_status(app.address, LIVENESS_SERVICE) == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client, Request(text="Let me in."))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # The prewarm's two handshakes, then one probe per backoff ceiling: no storm.
        assert upstream.stats()["handshakes_rejected"] == 2
