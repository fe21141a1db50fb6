"""Multimodal, thinking and tool calls through voxgate against the embedded upstream, each
streamed and not, and what voxgate refuses before any upstream work."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import grpc
import pytest

from harness import API_KEY
from voxgate.client import Client
from voxgate.generation.multimodal import MAX_IMAGE_BYTES
from voxgate.generation.protocol import GENERATION_PATH, MULTIMODAL_PATH
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate_dev import DevUpstream, UpstreamOptions

IMAGE_URL = "https://example.com/cat.png"
WEATHER = pb.Tool(
    name="get_weather",
    description="Weather of a city",
    parameters=json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}),
)
ASK_WEATHER = "What is the weather in Paris? Use get_weather"


def png(width: int, height: int) -> bytes:
    """A real PNG (grey, 8-bit), small: its rows compress to almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    return UpstreamOptions(api_key=API_KEY, token_interval_ms=5)  # reasoning takes time before the answer


async def stream(client: Client, **fields: Any) -> list[pb.GenerateStreamResponse]:
    return [piece async for piece in client.generate_stream(pb.GenerateStreamRequest(**fields), timeout_s=30)]


async def invalid(client: Client, **fields: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.generate(pb.GenerateRequest(**fields), timeout_s=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value.details() or ""


def look(*parts: pb.ContentPart) -> list[pb.Message]:
    return [pb.Message(role="user", parts=[*parts, pb.ContentPart(text="What is this?")])]


# --- multimodal ----------------------------------------------------------------------------


async def test_an_image_url_goes_to_the_multimodal_endpoint(client: Client, upstream: DevUpstream) -> None:
    reply = await client.generate(
        pb.GenerateRequest(model="local-echo-vl", messages=look(pb.ContentPart(image_url=IMAGE_URL))),
        timeout_s=30,
    )
    assert reply.text == f"Hello! You said: What is this? I see 1 image: {IMAGE_URL}"
    assert (reply.finish_reason, reply.model) == ("stop", "local-echo-vl")
    assert upstream.recorded[-1].path.endswith(MULTIMODAL_PATH)


async def test_inline_image_bytes_stream_from_the_multimodal_endpoint(client: Client) -> None:
    pieces = await stream(client, model="local-echo-vl", messages=look(pb.ContentPart(image=png(640, 480))))
    assert (
        "".join(piece.delta for piece in pieces)
        == "Hello! You said: What is this? I see 1 image: 640x480 PNG"
    )
    assert len(pieces) > 2 and pieces[-1].finish_reason == "stop"


async def test_text_models_stay_on_the_text_endpoint(client: Client, upstream: DevUpstream) -> None:
    await client.generate(pb.GenerateRequest(messages=[pb.Message(role="user", content="Hi")]), timeout_s=30)
    assert upstream.recorded[-1].path.endswith(GENERATION_PATH)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (look(pb.ContentPart(image=b"GIF8 but not really")), "messages[0].parts[0].image: not a PNG, JPEG"),
        (
            look(pb.ContentPart(image=b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES))),
            f"messages[0].parts[0].image: {MAX_IMAGE_BYTES + 8} bytes is over the limit",
        ),
        (look(pb.ContentPart(image_url="file:///etc/passwd")), "messages[0].parts[0].image_url: must be"),
        ([pb.Message(role="user", parts=[pb.ContentPart()])], "messages[0].parts[0]: set one of"),
        (
            [pb.Message(role="system", parts=[pb.ContentPart(image_url=IMAGE_URL)])],
            "messages[0].parts[0].image_url: images are allowed in user messages only",
        ),
        (
            [pb.Message(role="user", content="Hi", parts=[pb.ContentPart(text="Hi")])],
            "messages[0].parts: set content or parts, not both",
        ),
    ],
)
async def test_bad_images_are_invalid_argument_naming_the_part(
    client: Client, upstream: DevUpstream, message: list[pb.Message], expected: str
) -> None:
    before = len(upstream.recorded)
    assert (await invalid(client, model="local-echo-vl", messages=message)).startswith(expected)
    assert len(upstream.recorded) == before  # refused before any upstream work


# --- thinking ------------------------------------------------------------------------------

THINK = pb.Sampling(enable_thinking=True)
REASONING = "The user said: Who are you?. I will say it back."


async def test_generate_returns_the_reasoning_and_counts_its_tokens(client: Client) -> None:
    reply = await client.generate(
        pb.GenerateRequest(messages=[pb.Message(role="user", content="Who are you?")], sampling=THINK),
        timeout_s=30,
    )
    assert (reply.reasoning, reply.text) == (REASONING, "Hello! You said: Who are you?")
    assert reply.usage.reasoning_tokens == 15  # The user said : Who are you ? . I will say it back .
    assert reply.usage.output_tokens == 15 + 9  # Hello ! You said : Who are you ?


async def test_a_thinking_stream_sends_reasoning_deltas_then_the_answer(client: Client) -> None:
    pieces = await stream(client, messages=[pb.Message(role="user", content="Who are you?")], sampling=THINK)
    kinds = [
        "reasoning" if piece.reasoning_delta else "answer"
        for piece in pieces
        if piece.reasoning_delta or piece.delta
    ]
    assert kinds == ["reasoning"] * 15 + ["answer"] * 9  # all reasoning first, none lost
    assert all(not (piece.delta and piece.reasoning_delta) for piece in pieces)
    assert "".join(piece.reasoning_delta for piece in pieces) == REASONING
    assert "".join(piece.delta for piece in pieces) == "Hello! You said: Who are you?"
    last = pieces[-1]
    assert last.usage.reasoning_tokens == 15
    # The first token is reasoning; the answer starts 15 paced tokens later.
    assert last.time_to_first_token_ms < last.time_to_first_answer_token_ms


async def test_without_thinking_the_first_token_is_the_first_answer_token(client: Client) -> None:
    last = (await stream(client, messages=[pb.Message(role="user", content="Who are you?")]))[-1]
    assert last.time_to_first_answer_token_ms == last.time_to_first_token_ms  # the same delta
    assert last.usage.reasoning_tokens == 0


# --- tools ---------------------------------------------------------------------------------


async def test_generate_returns_the_tool_call_the_model_made(client: Client) -> None:
    reply = await client.generate(
        pb.GenerateRequest(messages=[pb.Message(role="user", content=ASK_WEATHER)], tools=[WEATHER]),
        timeout_s=30,
    )
    assert (reply.finish_reason, reply.text) == ("tool_calls", "")
    [call] = reply.tool_calls
    assert (call.name, call.arguments) == ("get_weather", "{}") and call.id.startswith("call_")


async def test_a_stream_assembles_the_streamed_tool_call_pieces(
    client: Client, upstream: DevUpstream
) -> None:
    pieces = await stream(
        client,
        messages=[pb.Message(role="user", content=ASK_WEATHER)],
        tools=[WEATHER],
        tool_choice="get_weather",
    )
    [last] = pieces  # no text, no reasoning: the one message is the last one
    [call] = last.tool_calls
    assert (call.name, call.arguments, last.finish_reason) == ("get_weather", "{}", "tool_calls")
    # The upstream sent the arguments in two pieces ("{" then "}"), the id and name with the first.
    body = json.loads(upstream.recorded[-1].body)
    assert body["parameters"]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_a_tool_round_trip(client: Client) -> None:
    question = pb.Message(role="user", content=ASK_WEATHER)
    first = await client.generate(pb.GenerateRequest(messages=[question], tools=[WEATHER]), timeout_s=30)
    [call] = first.tool_calls
    result = pb.Message(role="tool", content="Sunny, 21 C", tool_call_id=call.id)
    turn = pb.Message(role="assistant", tool_calls=[call])
    pieces = await stream(client, messages=[question, turn, result], tools=[WEATHER])
    assert "".join(piece.delta for piece in pieces) == "The tool said: Sunny, 21 C"
    assert pieces[-1].finish_reason == "stop" and not pieces[-1].tool_calls


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"tools": [pb.Tool(name="f", parameters="{not json")]},
            "tools[0].parameters: must be a JSON Schema object",
        ),
        (
            {"tools": [pb.Tool(name="f", parameters="[1]")]},
            "tools[0].parameters: must be a JSON Schema object",
        ),
        ({"tools": [pb.Tool(name="f g")]}, "tools[0].name: must be 1 to 64"),
        ({"tools": [pb.Tool(name="f"), pb.Tool(name="f")]}, "tools[1].name: 'f' is already"),
        (
            {"tools": [pb.Tool(name="f")], "tool_choice": "g"},
            "tool_choice: must be 'auto', 'none' or the name",
        ),
        ({"tool_choice": "auto"}, "tool_choice: needs tools"),
        (
            {
                "messages": [
                    pb.Message(role="user", content="Hi"),
                    pb.Message(role="tool", content="x", tool_call_id="c1"),
                ]
            },
            "messages[1].tool_call_id: 'c1' is not the id of a tool call",
        ),
        (
            {"messages": [pb.Message(role="tool", content="x")]},
            "messages[0].tool_call_id: required for role tool",
        ),
        (
            {"messages": [pb.Message(role="user", content="Hi", tool_calls=[pb.ToolCall(id="c", name="f")])]},
            "messages[0].tool_calls: only assistant messages",
        ),
        (
            {
                "messages": [
                    pb.Message(role="assistant", tool_calls=[pb.ToolCall(id="c", name="f", arguments="{")])
                ]
            },
            "messages[0].tool_calls[0].arguments: must be a JSON object",
        ),
    ],
)
async def test_bad_tools_are_invalid_argument_naming_the_field(
    client: Client, fields: dict[str, Any], expected: str
) -> None:
    fields.setdefault("messages", [pb.Message(role="user", content="Hi")])
    assert (await invalid(client, **fields)).startswith(expected)
