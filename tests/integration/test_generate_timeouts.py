"""Timeouts that don't bill twice: the issue's repro, scaled down (2 s timeout, 3 s upstream).

A Generate answer comes whole once generated, so only the total timeout bounds it (not the
first-byte one); a timeout after the request was sent is not retried, because the upstream may
still generate, and bills, that answer; the operator can opt in to such retries. Generations
are counted at the upstream, where the bill would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from harness import gateway_settings, running_gateway
from voxgate.client import Client
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate_dev import DevUpstream, GenerationFaults

TOTAL_TIMEOUT_S = 2
FIRST_BYTE_TIMEOUT_S = 1
SLOW_UPSTREAM_MS = 3000
ASK = pb.GenerateRequest(messages=[pb.Message(role="user", content="Write me a long essay")])
ENV: dict[str, Any] = {
    "VOXGATE_HTTP_TOTAL_TIMEOUT_S": TOTAL_TIMEOUT_S,
    "VOXGATE_HTTP_FIRST_BYTE_TIMEOUT_S": FIRST_BYTE_TIMEOUT_S,
}


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    return dict(ENV)


@pytest.fixture
def slow_upstream(set_faults: Callable[..., None]) -> Callable[[int], None]:
    def apply(delay_ms: int) -> None:
        set_faults(generation=GenerationFaults(first_byte_delay_ms=delay_ms))  # every request

    return apply


async def test_an_answer_slower_than_the_first_byte_timeout_is_not_cut(
    client: Client, upstream: DevUpstream, slow_upstream: Callable[[int], None]
) -> None:
    slow_upstream(1500)  # over the first-byte timeout, under the total one
    reply = await client.generate(ASK, timeout_s=30)
    assert (reply.finish_reason, reply.attempts) == ("stop", 1)
    assert upstream.stats()["generations_started"] == 1


async def test_a_timeout_after_sending_is_not_retried(
    client: Client, upstream: DevUpstream, slow_upstream: Callable[[int], None]
) -> None:
    slow_upstream(SLOW_UPSTREAM_MS)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.generate(ASK, timeout_s=30)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    details = info.value.details() or ""
    assert "VOXGATE_HTTP_TOTAL_TIMEOUT_S" in details and "not retried" in details
    assert upstream.stats()["generations_started"] == 1  # one generation, one bill


async def test_a_stream_keeps_its_first_byte_timeout_and_is_not_retried_either(
    client: Client, upstream: DevUpstream, slow_upstream: Callable[[int], None]
) -> None:
    slow_upstream(1500)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in client.generate_stream(pb.GenerateStreamRequest(messages=ASK.messages), timeout_s=30):
            pass
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "VOXGATE_HTTP_FIRST_BYTE_TIMEOUT_S" in (info.value.details() or "")
    assert upstream.stats()["generations_started"] == 1


async def test_the_operator_can_opt_in_to_retrying_them(
    upstream: DevUpstream, slow_upstream: Callable[[int], None]
) -> None:
    slow_upstream(SLOW_UPSTREAM_MS)
    settings = gateway_settings(upstream, **ENV, VOXGATE_HTTP_RETRY_SENT_TIMEOUTS="true")
    async with running_gateway(settings) as app, Client(app.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.generate(ASK, timeout_s=30)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "after 3 attempts" in (info.value.details() or "")
    assert upstream.stats()["generations_started"] == 3  # what the issue saw: three bills
