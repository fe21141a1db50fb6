"""Fault matrix, task faults and callers: task-failed, throttling, client cancel and deadline,
retries within the caller's deadline, the overflow policy, and the return discipline that
keeps ``Invalid action('run-task')`` away. Real gateway, real embedded upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from harness import (
    API_KEY,
    TEXT,
    Request,
    collect,
    gateway_settings,
    pool_back_to_size,
    running_gateway,
)
from voxgate.app import App
from voxgate.client import Client
from voxgate.rpc.errors import MD_UPSTREAM_CODE
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

PCM = speech_pb2.AUDIO_FORMAT_PCM
if TYPE_CHECKING:
    Call = grpc.aio.UnaryStreamCall[speech_pb2.SynthesizeRequest, speech_pb2.SynthesizeResponse]


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    # Paced at half real time: a stream of TEXT (~5 s of speech) is reliably mid-flight when
    # a test acts on it after its first chunk.
    return UpstreamOptions(api_key=API_KEY, rtf=0.5)


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    return {"VOXGATE_POOL_MAX_SIZE": 4}


async def healthy_afterwards(app: App, client: Client, upstream: DevUpstream) -> None:
    """Pool full again; follow-up calls each succeed on the first connection they get."""
    await pool_back_to_size(app)
    requests = [Request(text="Fine.", format=PCM) for _ in range(8)]
    results = await asyncio.gather(*(collect(client, request) for request in requests))
    assert all(audio and summary.attempts == 1 for audio, summary in results)
    assert upstream.stats()["invalid_action_errors"] == 0


async def first_chunk(call: Call) -> bytes:
    response = await call.read()
    assert isinstance(response, speech_pb2.SynthesizeResponse) and response.audio
    return response.audio


# --- task-failed and throttling ---------------------------------------------------------------------


async def test_transient_task_failure_before_audio_is_retried_on_another_connection(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(fail_after_bytes=0, fail_code="InternalError", times=1))
    audio, summary = await collect(client, Request(text="Retry me.", format=PCM))
    assert audio and summary.attempts == 2
    assert summary.audio_bytes == len(audio)
    await healthy_afterwards(gateway, client, upstream)


async def test_task_failure_after_audio_is_unavailable_with_the_bytes_delivered(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(fail_after_bytes=8000, fail_code="InternalError", times=1))
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in client.stream(Request(text=TEXT, format=PCM)):
            assert isinstance(item, bytes), "a summary would hide the truncation"
            received += len(item)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"interrupted after {received} bytes" in (info.value.details() or "")
    assert dict(info.value.trailing_metadata() or ())[MD_UPSTREAM_CODE] == "InternalError"
    await healthy_afterwards(gateway, client, upstream)


async def test_task_failure_for_the_content_is_not_retried(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(fail_after_bytes=0, fail_code="InvalidParameter", fail_message="bad text"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(text="Bad."))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert upstream.stats()["tasks_failed"] == 1  # one attempt: retrying would fail the same way
    upstream.set_faults(Faults())
    await healthy_afterwards(gateway, client, upstream)


async def test_throttling_once_is_retried_with_backoff(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    upstream.set_faults(Faults(throttle=True, times=1))
    audio, summary = await collect(client, Request(text="Again.", format=PCM))
    assert audio and summary.attempts == 2
    await healthy_afterwards(gateway, client, upstream)


async def test_retries_stop_within_the_callers_deadline_with_the_real_reason(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=2, VOXGATE_MAX_ATTEMPTS=50)
    async with running_gateway(settings) as app, Client(app.address) as client:
        upstream.set_faults(Faults(throttle=True))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client, Request(text="Busy?"), timeout_s=3)
        # Not DEADLINE_EXCEEDED: the next backoff would not fit, so it says why it gave up.
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        attempts = int((info.value.details() or "").rpartition("after ")[2].split()[0])
        assert 2 < attempts < 50
        upstream.set_faults(Faults())
        await healthy_afterwards(app, client, upstream)


# --- the caller goes away ---------------------------------------------------------------------------


async def test_client_cancel_mid_stream_salvages_the_connection(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    call = client.speech.Synthesize(Request(text=TEXT, format=PCM))
    await first_chunk(call)
    call.cancel()
    await pool_back_to_size(gateway)
    # Read to task-finished in the background and given back: no reconnect.
    assert gateway.pool.stats().evicted == {}
    assert (gateway.overload.salvaged, gateway.overload.salvage_closed) == (1, 0)
    assert upstream.stats()["connections_opened"] == 4
    await healthy_afterwards(gateway, client, upstream)


async def test_client_cancel_mid_stream_with_salvage_off_discards_the_connection(
    upstream: DevUpstream,
) -> None:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=4, VOXGATE_SALVAGE_TIMEOUT_S=0)
    async with running_gateway(settings) as app, Client(app.address) as client:
        call = client.speech.Synthesize(Request(text=TEXT, format=PCM))
        await first_chunk(call)
        call.cancel()
        await pool_back_to_size(app)
        assert app.pool.stats().evicted == {"discarded": 1}
        assert (app.overload.salvaged, app.overload.salvage_closed) == (0, 1)
        await healthy_afterwards(app, client, upstream)


async def test_client_deadline_mid_stream_is_deadline_exceeded_and_salvages_the_connection(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client, Request(text=TEXT, format=PCM), timeout_s=1.0)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await pool_back_to_size(gateway)
    assert gateway.pool.stats().evicted == {}
    assert gateway.overload.salvaged == 1
    await healthy_afterwards(gateway, client, upstream)


async def test_no_reused_connection_ever_meets_invalid_action_run_task(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    # Every way a task can end early, on a pool of four, then enough calls to reuse each
    # connection several times. A dirty connection handed back would fail its next run-task.
    calls = [client.speech.Synthesize(Request(text=TEXT, format=PCM)) for _ in range(3)]
    for call in calls:
        await first_chunk(call)
        call.cancel()
    with pytest.raises(grpc.aio.AioRpcError):
        await collect(client, Request(text=TEXT, format=PCM), timeout_s=1.0)
    upstream.set_faults(Faults(fail_after_bytes=4000, times=1))
    with pytest.raises(grpc.aio.AioRpcError):
        await collect(client, Request(text=TEXT, format=PCM))
    await pool_back_to_size(gateway)
    for _ in range(3):
        await healthy_afterwards(gateway, client, upstream)
    stats = gateway.pool.stats()
    assert stats.reused_leases >= 16
    # The cancels and the deadline are salvaged; the failed task's connection is closed.
    assert stats.evicted == {"discarded": 1}
    assert gateway.overload.salvaged == 4
    assert upstream.stats()["invalid_action_errors"] == 0


# --- overflow policy --------------------------------------------------------------------------------


@pytest.fixture
async def overflow_gateway(upstream: DevUpstream) -> AsyncIterator[App]:
    settings = gateway_settings(upstream, VOXGATE_POOL_MAX_SIZE=1, VOXGATE_POOL_OVERFLOW="overflow")
    async with running_gateway(settings) as app:
        yield app


async def test_overflow_policy_serves_beyond_the_pool_with_temporary_connections(
    overflow_gateway: App, upstream: DevUpstream
) -> None:
    async with Client(overflow_gateway.address) as client:
        holder = client.speech.Synthesize(Request(text=TEXT, format=PCM))
        await first_chunk(holder)  # the one pooled connection is busy
        audio, summary = await collect(client, Request(text="Overflow.", format=PCM))
        assert audio and summary.attempts == 1 and not summary.connection_reused
        holder.cancel()
        await pool_back_to_size(overflow_gateway)
        stats = overflow_gateway.pool.stats()
        assert stats.overflow_leases == 1 and stats.evicted.get("overflow") == 1
        assert stats.open == 1  # the temporary connection was closed, not pooled
        assert upstream.stats()["invalid_action_errors"] == 0
