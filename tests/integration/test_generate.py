"""Generate and GenerateStream end to end: real gateway, real embedded upstream, real gRPC client.

Every error mapping, retries before the first delta (never after it), and connection reuse
counted at the upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import grpc
import pytest

from harness import API_KEY, gateway_settings, running_gateway
from voxgate.app import App
from voxgate.client import Client
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate.rpc.errors import (
    MD_TEXT_CHARS_SENT,
    MD_UPSTREAM_CODE,
    MD_UPSTREAM_HTTP_STATUS,
    MD_UPSTREAM_REQUEST_ID,
)
from voxgate_dev import DevUpstream, GenerationFaults

PROMPT = "Tell me about connection pools"
ANSWER = "Hello! You said: Tell me about connection pools"  # local-echo's documented answer
HTTP_LIMIT = 4


def ask(prompt: str = PROMPT, **fields: Any) -> dict[str, Any]:
    return {"messages": [pb.Message(role="user", content=prompt)], **fields}


async def stream_all(client: Client, **fields: Any) -> list[pb.GenerateStreamResponse]:
    request = pb.GenerateStreamRequest(**ask(**fields))
    return [piece async for piece in client.generate_stream(request, timeout_s=30)]


def trailing(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {key: str(value) for key, value in (error.trailing_metadata() or ())}


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    return {"VOXGATE_HTTP_LIMIT": HTTP_LIMIT, "VOXGATE_POOL_MAX_SIZE": 1}


@pytest.fixture
def set_generation_faults(set_faults: Callable[..., None]) -> Callable[..., None]:
    def apply(times: int | None = None, **faults: Any) -> None:
        set_faults(generation=GenerationFaults(**faults), times=times)

    return apply


# --- answers ---------------------------------------------------------------------------------


async def test_generate_returns_the_whole_answer_with_usage(client: Client) -> None:
    reply = await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)
    assert reply.text == ANSWER
    assert reply.finish_reason == "stop"
    assert reply.model == "local-echo" and reply.attempts == 1 and reply.request_id
    assert reply.usage.input_tokens == 5  # five words in the prompt
    assert reply.usage.output_tokens == 10  # Hello ! You said : Tell me about connection pools
    assert reply.usage.total_tokens == 15


async def test_stream_delivers_deltas_then_one_last_message(client: Client) -> None:
    pieces = await stream_all(client)
    *deltas, last = pieces
    assert "".join(piece.delta for piece in pieces) == ANSWER
    assert len(deltas) == 9  # token by token, not one buffered answer
    assert all(piece.delta and not piece.finish_reason for piece in deltas)
    assert last.finish_reason == "stop" and last.usage.output_tokens == 10 and last.attempts == 1
    assert last.model == "local-echo"
    assert {piece.request_id for piece in pieces} == {last.request_id}


async def test_max_tokens_and_stop_reach_the_model(client: Client) -> None:
    short = await client.generate(pb.GenerateRequest(**ask(sampling=pb.Sampling(max_tokens=3))))
    assert (short.text, short.finish_reason, short.usage.output_tokens) == ("Hello! You", "length", 3)
    stopped = await stream_all(client, sampling=pb.Sampling(stop=[":"]))
    assert "".join(piece.delta for piece in stopped) == "Hello! You said"
    assert stopped[-1].finish_reason == "stop"


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"messages": []}, "messages"),
        (
            {"messages": [pb.Message(role="user", content="hi"), pb.Message(role="robot", content="x")]},
            "messages[1].role",
        ),
        ({"messages": [pb.Message(role="user", content="  ")]}, "messages[0].content"),
        ({"model": "no spaces"}, "model"),
        ({"sampling": pb.Sampling(max_tokens=0)}, "sampling.max_tokens"),
        ({"sampling": pb.Sampling(temperature=2.0)}, "sampling.temperature"),
        ({"sampling": pb.Sampling(top_p=0.0)}, "sampling.top_p"),
        ({"sampling": pb.Sampling(top_k=101)}, "sampling.top_k"),
        ({"sampling": pb.Sampling(seed=2**31)}, "sampling.seed"),
        ({"sampling": pb.Sampling(stop=["a", "b", "c", "d", "e"])}, "sampling.stop"),
        ({"sampling": pb.Sampling(stop=["ok", ""])}, "sampling.stop[1]"),
        ({"sampling": pb.Sampling(presence_penalty=-2.5)}, "sampling.presence_penalty"),
        ({"sampling": pb.Sampling(repetition_penalty=0.0)}, "sampling.repetition_penalty"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    client: Client, upstream: DevUpstream, request_fields: dict[str, Any], field: str
) -> None:
    fields = {**ask(), **request_fields}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.generate(pb.GenerateRequest(**fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}: ")
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        await stream_all(client, **request_fields)
    assert streamed.value.details() == info.value.details()
    assert upstream.stats()["generations_started"] == 0  # rejected before any upstream call
    assert (await client.generate(pb.GenerateRequest(**ask()))).text == ANSWER  # and it carries on


# --- error mapping -------------------------------------------------------------------------------


async def test_upstream_invalid_parameter_is_invalid_argument_with_its_code(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.generate(pb.GenerateRequest(**ask(model="qwen-plus")))  # not a local model
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    metadata = trailing(info.value)
    assert metadata[MD_UPSTREAM_CODE] == "InvalidParameter"
    assert metadata[MD_UPSTREAM_HTTP_STATUS] == "400"
    assert metadata[MD_UPSTREAM_REQUEST_ID]
    assert "Model not exist." in (info.value.details() or "")


@pytest.mark.parametrize(
    ("status", "code", "upstream_code"),
    [
        (403, grpc.StatusCode.FAILED_PRECONDITION, "AccessDenied"),
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED, "Throttling.RateQuota"),
        (500, grpc.StatusCode.UNAVAILABLE, "InternalError"),
        (503, grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_persistent_upstream_errors_map_to_their_status(
    client: Client,
    upstream: DevUpstream,
    set_generation_faults: Callable[..., None],
    status: int,
    code: grpc.StatusCode,
    upstream_code: str,
    streaming: bool,
) -> None:
    set_generation_faults(error_status=status)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if streaming:
            await stream_all(client)
        else:
            await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)
    assert info.value.code() == code
    assert trailing(info.value)[MD_UPSTREAM_CODE] == upstream_code
    assert trailing(info.value)[MD_UPSTREAM_HTTP_STATUS] == str(status)
    retried = code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
    assert upstream.stats()["generations_started"] == (3 if retried else 1)  # VOXGATE_MAX_ATTEMPTS=3
    if retried:
        assert "after 3 attempts" in (info.value.details() or "")


async def test_rejected_credentials_are_failed_precondition(upstream: DevUpstream) -> None:
    settings = gateway_settings(upstream, api_key="sk-wrong", VOXGATE_POOL_MAX_SIZE=1)
    async with running_gateway(settings, wait_ready=False) as app, Client(app.address) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert trailing(info.value)[MD_UPSTREAM_CODE] == "InvalidApiKey"
    assert "DASHSCOPE_API_KEY" in (info.value.details() or "")
    assert "sk-wrong" not in (info.value.details() or "")


async def test_lost_connections_that_persist_are_unavailable(
    client: Client, upstream: DevUpstream, set_generation_faults: Callable[..., None]
) -> None:
    set_generation_faults(drop_after_tokens=0)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "upstream connection failed" in (info.value.details() or "")
    assert upstream.stats()["generations_started"] == 3


async def test_caller_deadline_is_deadline_exceeded_and_frees_the_connection(
    client: Client, upstream: DevUpstream, set_generation_faults: Callable[..., None]
) -> None:
    set_generation_faults(first_byte_delay_ms=60_000, times=1)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream_all_with_timeout(client, timeout_s=1.0)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The abandoned request's connection was closed, not returned: the next call works.
    assert (await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)).text == ANSWER


async def stream_all_with_timeout(client: Client, timeout_s: float) -> None:
    request = pb.GenerateStreamRequest(**ask())
    async for _ in client.generate_stream(request, timeout_s=timeout_s):
        pass


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        {"error_status": 429},
        {"error_status": 500},
        {"drop_after_tokens": 0},
        {"error_after_tokens": 0},  # event:error before the first token
    ],
    ids=["throttled", "internal-error", "connection-lost", "event-error-first"],
)
async def test_failure_before_the_first_delta_is_retried(
    client: Client, upstream: DevUpstream, set_generation_faults: Callable[..., None], faults: dict[str, Any]
) -> None:
    set_generation_faults(times=1, **faults)
    pieces = await stream_all(client)
    assert "".join(piece.delta for piece in pieces) == ANSWER
    assert pieces[-1].attempts == 2
    assert upstream.stats()["generations_started"] == 2
    set_generation_faults(times=1, **faults)
    reply = await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)
    assert (reply.text, reply.attempts) == (ANSWER, 2)


@pytest.mark.parametrize(
    "faults",
    [{"error_after_tokens": 3}, {"drop_after_tokens": 3}],
    ids=["event-error", "connection-lost"],
)
async def test_failure_after_the_first_delta_is_never_retried(
    client: Client, upstream: DevUpstream, set_generation_faults: Callable[..., None], faults: dict[str, Any]
) -> None:
    set_generation_faults(times=1, **faults)
    received: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for piece in client.generate_stream(pb.GenerateStreamRequest(**ask()), timeout_s=30):
            assert not piece.finish_reason, "a last message after a broken stream would hide the truncation"
            received.append(piece.delta)
    assert "".join(received) == "Hello! You"  # three tokens, then the break
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    chars = len("".join(received))
    assert f"interrupted after {chars} characters in 3 deltas" in (info.value.details() or "")
    assert trailing(info.value)[MD_TEXT_CHARS_SENT] == str(chars)
    assert upstream.stats()["generations_started"] == 1  # no second attempt


# --- one shared session ----------------------------------------------------------------------------


async def test_sequential_and_concurrent_calls_stay_within_the_connector_limit(
    gateway: App, client: Client, upstream: DevUpstream
) -> None:
    for index in range(200):
        if index % 2:
            assert (await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)).text == ANSWER
        else:
            assert "".join(piece.delta for piece in await stream_all(client)) == ANSWER
    assert upstream.stats()["generation_connections_opened"] == 1  # one kept-alive connection

    async def one(index: int) -> str:
        if index % 2:
            return (await client.generate(pb.GenerateRequest(**ask()), timeout_s=60)).text
        return "".join(piece.delta for piece in await stream_all(client))

    answers = await asyncio.gather(*(one(index) for index in range(50)))
    assert answers == [ANSWER] * 50
    stats = upstream.stats()
    assert stats["generations_finished"] == 250
    assert stats["generation_connections_opened"] <= HTTP_LIMIT


async def test_generation_faults_switch_at_run_time_over_http(client: Client, upstream: DevUpstream) -> None:
    origin = upstream.http_base_url.removesuffix("/api/v1")
    async with aiohttp.ClientSession() as http:
        body = {"generation": {"error_status": 429}, "times": 1}
        auth = {"Authorization": f"Bearer {API_KEY}"}  # the control endpoint takes the upstream's key
        async with http.put(f"{origin}/_dev/faults", json=body, headers=auth) as response:
            assert response.status == 200
        async with http.get(f"{origin}/_dev/stats") as response:
            assert (await response.json())["generation_connections_opened"] == 0
    reply = await client.generate(pb.GenerateRequest(**ask()), timeout_s=30)
    assert (reply.text, reply.attempts) == (ANSWER, 2)
