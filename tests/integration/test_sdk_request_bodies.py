"""voxgate sends what the vendor SDK sends, for multimodal, tool and thinking calls.

Each scenario runs the vendor SDK (dashscope 2.0.2) and voxgate, each against the same
embedded upstream, which records what it receives; the two requests must have the same path,
the same JSON body and the same protocol headers. The SDK's side is also kept in
``tests/fixtures/sdk-2.0.2-generation-features.json`` (what the SDK sent, recorded by this
test with ``VOXGATE_RECORD_FIXTURES=1``); the test checks the live SDK still sends it, so a
new SDK that changed its requests shows up here first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import dashscope
import pytest

from harness import API_KEY
from voxgate.client import Client
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate_dev import DevUpstream
from voxgate_dev.app import RecordedRequest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sdk-2.0.2-generation-features.json"
sdk: Any = dashscope
PROTOCOL_HEADERS = ("Accept", "Content-Type", "X-DashScope-SSE", "X-Accel-Buffering", "X-DashScope-WorkSpace")

IMAGE_URL = "https://example.com/cat.png"
# A 1x1 PNG: what the caller sends as bytes, and the SDK as a data URL.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SDK_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather of a city", "parameters": WEATHER_SCHEMA},
    }
]
TOOLS = [pb.Tool(name="get_weather", description="Weather of a city", parameters=json.dumps(WEATHER_SCHEMA))]
CALL_ID = "call_0123456789abcdef"
ASK_WEATHER = "What is the weather in Paris? Use get_weather"
PARIS = '{"city": "Paris"}'
WHAT = pb.ContentPart(text="What is this?")


def user(*parts: pb.ContentPart) -> pb.Message:
    return pb.Message(role="user", parts=list(parts))


TOOL_ROUND_TRIP_SDK = [
    {"role": "user", "content": ASK_WEATHER},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "content": "Sunny, 21 C", "tool_call_id": CALL_ID},
]
TOOL_ROUND_TRIP = [
    pb.Message(role="user", content=ASK_WEATHER),
    pb.Message(
        role="assistant",
        tool_calls=[pb.ToolCall(id=CALL_ID, name="get_weather", arguments='{"city": "Paris"}')],
    ),
    pb.Message(role="tool", content="Sunny, 21 C", tool_call_id=CALL_ID),
]


def mm_messages(image: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"image": image}, {"text": "What is this?"}]}]


# name: (SDK call, voxgate request, streamed)
SCENARIOS: dict[str, tuple[Callable[[], Any], dict[str, Any], bool]] = {
    "multimodal_image_url": (
        lambda: sdk.MultiModalConversation.call(model="local-echo-vl", messages=mm_messages(IMAGE_URL)),
        {
            "model": "local-echo-vl",
            "messages": [user(pb.ContentPart(image_url=IMAGE_URL), pb.ContentPart(text="What is this?"))],
        },
        False,
    ),
    "multimodal_inline_image_stream": (
        lambda: list(
            sdk.MultiModalConversation.call(
                model="local-echo-vl",
                messages=mm_messages("data:image/png;base64," + base64.b64encode(PNG).decode()),
                stream=True,
                incremental_output=True,
            )
        ),
        {
            "model": "local-echo-vl",
            "messages": [user(pb.ContentPart(image=PNG), pb.ContentPart(text="What is this?"))],
        },
        True,
    ),
    "tools": (
        lambda: sdk.Generation.call(
            model="local-echo",
            messages=[{"role": "user", "content": ASK_WEATHER}],
            tools=SDK_TOOLS,
            tool_choice="auto",
            result_format="message",
        ),
        {"messages": [pb.Message(role="user", content=ASK_WEATHER)], "tools": TOOLS, "tool_choice": "auto"},
        False,
    ),
    "tools_forced_stream": (
        lambda: list(
            sdk.Generation.call(
                model="local-echo",
                messages=[{"role": "user", "content": ASK_WEATHER}],
                tools=SDK_TOOLS,
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                result_format="message",
                stream=True,
                incremental_output=True,
            )
        ),
        {
            "messages": [pb.Message(role="user", content=ASK_WEATHER)],
            "tools": TOOLS,
            "tool_choice": "get_weather",
        },
        True,
    ),
    "tool_result": (
        lambda: sdk.Generation.call(
            model="local-echo", messages=TOOL_ROUND_TRIP_SDK, tools=SDK_TOOLS, result_format="message"
        ),
        {"messages": TOOL_ROUND_TRIP, "tools": TOOLS},
        False,
    ),
    "thinking_stream": (
        lambda: list(
            sdk.Generation.call(
                model="local-echo",
                messages=[{"role": "user", "content": "Who are you?"}],
                enable_thinking=True,
                result_format="message",
                stream=True,
                incremental_output=True,
            )
        ),
        {
            "messages": [pb.Message(role="user", content="Who are you?")],
            "sampling": pb.Sampling(enable_thinking=True),
        },
        True,
    ),
    "thinking": (
        lambda: sdk.Generation.call(
            model="local-echo",
            messages=[{"role": "user", "content": "Who are you?"}],
            enable_thinking=True,
            result_format="message",
        ),
        {
            "messages": [pb.Message(role="user", content="Who are you?")],
            "sampling": pb.Sampling(enable_thinking=True),
        },
        False,
    ),
}


def seen(request: RecordedRequest) -> dict[str, Any]:
    """What a recorded request says, minus what differs by client (user agent, ids, lengths)."""
    headers = {name: request.header(name) for name in PROTOCOL_HEADERS if request.header(name) is not None}
    return {"path": request.path, "headers": headers, "body": json.loads(request.body)}


@pytest.fixture
async def sdk_on(upstream: DevUpstream, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DevUpstream]:
    monkeypatch.setattr(dashscope, "api_key", API_KEY)
    monkeypatch.setattr(dashscope, "base_http_api_url", upstream.http_base_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield upstream
    await sdk.close_shared_aio_session()
    await asyncio.to_thread(sdk.close_shared_sync_session)


async def test_voxgate_sends_the_sdks_requests(sdk_on: DevUpstream, client: Client) -> None:
    upstream = sdk_on
    recorded: dict[str, Any] = {}
    for name, (sdk_call, fields, streamed) in SCENARIOS.items():
        answer = await asyncio.to_thread(sdk_call)
        for response in answer if isinstance(answer, list) else [answer]:
            assert response.status_code == 200, f"{name}: {response.code} {response.message}"
        recorded[name] = seen(upstream.recorded[-1])
        if streamed:
            request = pb.GenerateStreamRequest(**fields)
            pieces = [piece async for piece in client.generate_stream(request, timeout_s=30)]
            assert pieces[-1].finish_reason, name
        else:
            await client.generate(pb.GenerateRequest(**fields), timeout_s=30)
        assert seen(upstream.recorded[-1]) == recorded[name], name
    if os.environ.get("VOXGATE_RECORD_FIXTURES") == "1":
        FIXTURE.write_text(json.dumps(recorded, indent=2, ensure_ascii=False) + "\n")
    assert recorded == json.loads(FIXTURE.read_text()), "the SDK no longer sends what the fixture recorded"
