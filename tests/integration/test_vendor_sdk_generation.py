"""The vendor's own SDK (dashscope 2.0.2) generating text on the local upstream, unchanged,
pointed only by ``dashscope.base_http_api_url``: ``Generation.call`` and ``AioGeneration.call``,
each streaming and not.

The sync SDK blocks (requests), so it runs in a worker thread while the upstream serves in the
test's loop. The SDK keeps one shared HTTP session per process (sync) and per loop (aio);
both are closed after each test, or their sockets would leak into ResourceWarnings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import dashscope
import pytest

from voxgate_dev import DevUpstream, Faults, GenerationFaults, UpstreamOptions

# Untyped on purpose: the SDK's annotations disagree with what it does (messages as plain
# dicts are documented; AioGeneration.call(stream=True) returns an async generator).
sdk: Any = dashscope
Generation: Any = dashscope.Generation
AioGeneration: Any = dashscope.AioGeneration

KEY = "sk-vendor-sdk-generation-test"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Who are you?"},
]
ANSWER = "Hello! You said: Who are you?"
TIMEOUT_S = 30


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DevUpstream]:
    server = DevUpstream(UpstreamOptions(api_key=KEY, token_interval_ms=1))
    await server.start()
    monkeypatch.setattr(dashscope, "api_key", KEY)
    monkeypatch.setattr(dashscope, "base_http_api_url", server.http_base_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the aio session trusts proxy env vars
    yield server
    await sdk.close_shared_aio_session()
    await asyncio.to_thread(sdk.close_shared_sync_session)
    await server.stop()


def call_sync(**kwargs: Any) -> Any:
    return Generation.call(
        model="local-echo", messages=MESSAGES, result_format="message", request_timeout=TIMEOUT_S, **kwargs
    )


async def test_generation_call(upstream: DevUpstream) -> None:
    response = await asyncio.to_thread(call_sync)
    assert response.status_code == 200, response.message
    choice = response.output.choices[0]
    assert (choice.message.content, choice.finish_reason) == (ANSWER, "stop")
    # A token is a word or a punctuation mark: "You are a helpful assistant ." + "Who are you ?"
    # in, "Hello ! You said : Who are you ?" out.
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 9)
    assert response.request_id


async def test_generation_call_text_format_with_max_tokens(upstream: DevUpstream) -> None:
    def call() -> Any:
        return Generation.call(
            model="local-echo", prompt="Tell me a joke", max_tokens=3, request_timeout=TIMEOUT_S
        )

    response = await asyncio.to_thread(call)
    assert response.status_code == 200, response.message
    assert (response.output.text, response.output.finish_reason) == ("Hello! You", "length")


async def test_generation_call_stream_incremental(upstream: DevUpstream) -> None:
    def call() -> list[Any]:
        return list(call_sync(stream=True, incremental_output=True))

    chunks = await asyncio.to_thread(call)
    assert all(chunk.status_code == 200 for chunk in chunks)
    assert len(chunks) > 1
    assert "".join(chunk.output.choices[0].message.content for chunk in chunks) == ANSWER
    assert chunks[-1].output.choices[0].finish_reason == "stop"


async def test_generation_call_stream_cumulative(upstream: DevUpstream) -> None:
    def call() -> list[Any]:
        return list(call_sync(stream=True))  # the SDK asks for deltas and adds them up itself

    chunks = await asyncio.to_thread(call)
    texts = [chunk.output.choices[0].message.content for chunk in chunks]
    assert texts[-1] == ANSWER
    assert all(ANSWER.startswith(text) for text in texts)


async def test_aio_generation_call(upstream: DevUpstream) -> None:
    response = await AioGeneration.call(
        model="local-echo", messages=MESSAGES, result_format="message", request_timeout=TIMEOUT_S
    )
    assert response.status_code == 200, response.message
    assert response.output.choices[0].message.content == ANSWER


async def test_aio_generation_call_stream(upstream: DevUpstream) -> None:
    chunks = await AioGeneration.call(
        model="local-echo",
        messages=MESSAGES,
        result_format="message",
        stream=True,
        incremental_output=True,
        request_timeout=TIMEOUT_S,
    )
    pieces = [chunk async for chunk in chunks]
    assert "".join(chunk.output.choices[0].message.content for chunk in pieces) == ANSWER
    assert pieces[-1].output.choices[0].finish_reason == "stop"


async def test_throttling_reaches_the_sdk_as_status_429(upstream: DevUpstream) -> None:
    upstream.set_faults(Faults(generation=GenerationFaults(error_status=429), times=2))
    response = await asyncio.to_thread(call_sync)
    assert (response.status_code, response.code) == (429, "Throttling.RateQuota")
    chunks = await asyncio.to_thread(lambda: list(call_sync(stream=True)))
    assert [(chunk.status_code, chunk.code) for chunk in chunks] == [(429, "Throttling.RateQuota")]


async def test_mid_stream_error_reaches_the_sdk(upstream: DevUpstream) -> None:
    upstream.set_faults(Faults(generation=GenerationFaults(error_after_tokens=2, error_message="midway")))
    chunks = await asyncio.to_thread(lambda: list(call_sync(stream=True, incremental_output=True)))
    assert [chunk.status_code for chunk in chunks] == [200, 200, 400]  # the SDK's default error status
    assert (chunks[-1].code, chunks[-1].message) == ("InternalError", "midway")


# --- multimodal, tools, thinking (the embedded upstream's local-echo-vl and local-echo) ------------

MultiModalConversation: Any = dashscope.MultiModalConversation
AioMultiModalConversation: Any = dashscope.AioMultiModalConversation
IMAGE_URL = "https://example.com/cat.png"
LOOK = [{"role": "user", "content": [{"image": IMAGE_URL}, {"text": "What is this?"}]}]
LOOKED = f"Hello! You said: What is this? I see 1 image: {IMAGE_URL}"
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris? Use get_weather"}]


async def test_multimodal_conversation_call(upstream: DevUpstream) -> None:
    response = await asyncio.to_thread(
        lambda: MultiModalConversation.call(model="local-echo-vl", messages=LOOK, request_timeout=TIMEOUT_S)
    )
    assert response.status_code == 200, response.message
    choice = response.output.choices[0]
    assert (choice.message.content, choice.finish_reason) == ([{"text": LOOKED}], "stop")


async def test_multimodal_conversation_call_stream(upstream: DevUpstream) -> None:
    def call() -> list[Any]:
        return list(
            MultiModalConversation.call(
                model="local-echo-vl",
                messages=LOOK,
                stream=True,
                incremental_output=True,
                request_timeout=TIMEOUT_S,
            )
        )

    chunks = await asyncio.to_thread(call)
    assert len(chunks) > 1 and all(chunk.status_code == 200 for chunk in chunks)
    text = "".join(part["text"] for chunk in chunks for part in chunk.output.choices[0].message.content)
    assert text == LOOKED


async def test_aio_multimodal_conversation_with_a_shared_aiohttp_session(upstream: DevUpstream) -> None:
    # DashScope's connection-reuse guide, as written (a session the caller owns and passes in).
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        responses = [
            await AioMultiModalConversation.call(
                model="local-echo-vl",
                messages=[{"role": "user", "content": [{"text": "Hello, please introduce yourself"}]}],
                session=session,
            )
            for _ in range(2)
        ]
    for response in responses:
        assert response.status_code == 200, response.message
        content = response.output.choices[0].message.content
        assert content == [{"text": "Hello! You said: Hello, please introduce yourself"}]
    assert upstream.stats()["generation_connections_opened"] == 1  # the session kept it alive


async def test_generation_call_with_tools(upstream: DevUpstream) -> None:
    response = await asyncio.to_thread(call_sync_with, ASK_WEATHER, tools=WEATHER)
    assert response.status_code == 200, response.message
    choice = response.output.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert (call["function"]["name"], call["function"]["arguments"]) == ("get_weather", "{}")
    assert call["id"].startswith("call_") and call["type"] == "function"


async def test_generation_call_with_tools_streams_the_call_in_pieces(upstream: DevUpstream) -> None:
    chunks = await asyncio.to_thread(
        lambda: list(call_sync_with(ASK_WEATHER, tools=WEATHER, stream=True, incremental_output=True))
    )
    pieces = [chunk.output.choices[0].message.tool_calls[0] for chunk in chunks]
    assert [piece["function"]["arguments"] for piece in pieces] == ["{", "}"]
    assert pieces[0]["id"] and pieces[0]["function"]["name"] == "get_weather"
    assert not pieces[1]["id"] and not pieces[1]["function"]["name"]  # only the first piece names the call
    assert chunks[-1].output.choices[0].finish_reason == "tool_calls"


async def test_generation_call_with_thinking_streams_reasoning_first(upstream: DevUpstream) -> None:
    chunks = await asyncio.to_thread(
        lambda: list(call_sync_with(MESSAGES, enable_thinking=True, stream=True, incremental_output=True))
    )
    messages = [chunk.output.choices[0].message for chunk in chunks]
    reasoning = "".join(message.reasoning_content for message in messages)
    assert reasoning == "The user said: Who are you?. I will say it back."
    assert "".join(message.content for message in messages) == ANSWER
    first_answer = next(i for i, message in enumerate(messages) if message.content)
    assert all(message.reasoning_content for message in messages[:first_answer])
    assert chunks[-1].usage.output_tokens_details["reasoning_tokens"] == first_answer


def call_sync_with(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return Generation.call(
        model="local-echo", messages=messages, result_format="message", request_timeout=TIMEOUT_S, **kwargs
    )
