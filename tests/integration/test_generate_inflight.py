"""GenerateStream while the upstream is still answering: deltas are forwarded as they come,
and a client cancel releases the upstream HTTP connection.

The upstream paces its tokens slowly (``token_interval_ms``) and the prompt is long, so the
answer takes minutes; each test checks the upstream's own counters while it is mid-answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from harness import API_KEY
from voxgate.client import Client
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate_dev import DevUpstream, UpstreamOptions

TOKEN_INTERVAL_MS = 1000
LONG_PROMPT = " ".join(["word"] * 200)  # ~200 tokens at 1 s each: minutes, not seconds


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    return UpstreamOptions(api_key=API_KEY, token_interval_ms=TOKEN_INTERVAL_MS)


async def wait_for_stats(upstream: DevUpstream, ready: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    """Poll the upstream's counters until ``ready`` holds (the state, not a time, decides)."""
    async with asyncio.timeout(60):
        # The upstream's counters are plain numbers with no event to wait on: poll the state.
        while not ready(stats := upstream.stats()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return stats


def long_request() -> pb.GenerateStreamRequest:
    return pb.GenerateStreamRequest(messages=[pb.Message(role="user", content=LONG_PROMPT)])


async def test_first_delta_arrives_while_the_upstream_is_still_answering(
    client: Client, upstream: DevUpstream
) -> None:
    call = client.generation.GenerateStream(long_request(), timeout=120)
    first = await call.read()
    assert isinstance(first, pb.GenerateStreamResponse) and first.delta == "Hello"
    stats = upstream.stats()
    assert stats["generations_streaming"] == 1  # the upstream has not finished its answer...
    assert stats["generations_finished"] == 0
    assert stats["generation_tokens_sent"] < 200  # ...nor sent most of it
    call.cancel()


async def test_cancelled_stream_releases_its_upstream_connection(
    client: Client, upstream: DevUpstream
) -> None:
    call = client.generation.GenerateStream(long_request(), timeout=120)
    await call.read()
    assert upstream.stats()["generation_connections_open"] == 1
    call.cancel()
    assert await call.code() == grpc.StatusCode.CANCELLED
    # The gateway closed the abandoned response's connection: the upstream sees its client go
    # away mid-answer and the connection closed (not parked in the pool with half an answer).
    stats = await wait_for_stats(
        upstream, lambda s: s["generations_cancelled"] == 1 and s["generation_connections_open"] == 0
    )
    assert stats["generations_streaming"] == 0 and stats["generations_finished"] == 0
    # And the next call gets a fresh connection that works.
    reply = await client.generate(pb.GenerateRequest(messages=[pb.Message(role="user", content="Again")]))
    assert reply.text == "Hello! You said: Again"
    assert upstream.stats()["generation_connections_opened"] == 2


async def test_deadline_mid_stream_is_deadline_exceeded_and_releases_the_connection(
    client: Client, upstream: DevUpstream
) -> None:
    received: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for piece in client.generate_stream(long_request(), timeout_s=5.0):
            received.append(piece.delta)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert received  # it was mid-answer
    await wait_for_stats(upstream, lambda s: s["generation_connections_open"] == 0)
