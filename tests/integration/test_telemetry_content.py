"""Opt-in content capture, as an OTLP receiver gets it: a real ``voxgate serve`` with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` and a 100-character cap, four calls:

* **tools**: Generate with a system message and a tool, answered with a tool call;
* **thinking**: GenerateStream with thinking, reasoning then answer;
* **private**: Generate whose caller sends ``voxgate-capture-content: false``;
* **long**: Generate with a 500-character prompt, cut at the cap.

Without the variable nothing of the content is exported: ``test_telemetry.py`` checks the
``chat`` span's attributes exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from harness import Process, child_env, wait_serving
from support.otlp import OtlpReceiver, ReceivedSpan
from voxgate.generation.content import MD_CAPTURE_CONTENT
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate.generation.v1 import generation_pb2_grpc
from voxgate_dev import DevUpstream, UpstreamOptions

SECRET = "sk-" + os.urandom(16).hex()
MAX_CHARS = 100
WEATHER = pb.Tool(
    name="get_weather",
    description="Weather of a city",
    parameters=json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}),
)
SYSTEM = "You are a weather bot."
ASK_WEATHER = "What is the weather in Paris? Use get_weather"
LONG = "word " * 100
CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"}


@dataclass(frozen=True)
class Run:
    trace_ids: dict[str, str]
    spans: list[ReceivedSpan]
    replies: dict[str, pb.GenerateResponse | pb.GenerateStreamResponse]
    exit_code: int
    logs: str

    def chat(self, call: str) -> ReceivedSpan:
        [span] = [s for s in self.spans if s.trace_id == self.trace_ids[call] and s.name.startswith("chat ")]
        return span

    def json(self, call: str, key: str) -> list[dict[str, Any]]:
        value = self.chat(call).attributes[key]
        assert isinstance(value, str)
        decoded: list[dict[str, Any]] = json.loads(value)
        return decoded


async def scenario(receiver: OtlpReceiver) -> Run:
    upstream = DevUpstream(UpstreamOptions(api_key=SECRET))
    await upstream.start()
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "1"],
        child_env(
            DASHSCOPE_API_KEY=SECRET,
            DASHSCOPE_WEBSOCKET_BASE_URL=upstream.ws_url,
            DASHSCOPE_HTTP_BASE_URL=upstream.http_base_url,
            VOXGATE_DEFAULT_GENERATION_MODEL="local-echo",
            VOXGATE_TRACE_CONTENT_MAX_CHARS=str(MAX_CHARS),
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
        ),
    )
    trace_ids: dict[str, str] = {}
    replies: dict[str, pb.GenerateResponse | pb.GenerateStreamResponse] = {}

    def metadata(call: str, seed: int, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        trace_ids[call] = f"{seed:02x}" * 16
        return (("traceparent", f"00-{trace_ids[call]}-{seed + 1:02x}{'00' * 7}-01"), *extra)

    try:
        address = await asyncio.to_thread(server.start, "voxgate listening on ")
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            asked = [pb.Message(role="system", content=SYSTEM), pb.Message(role="user", content=ASK_WEATHER)]
            replies["tools"] = await stub.Generate(
                pb.GenerateRequest(messages=asked, tools=[WEATHER]),
                metadata=metadata("tools", 0x21),
                timeout=30,
            )
            thinking = pb.GenerateStreamRequest(
                messages=[pb.Message(role="user", content="Who are you?")],
                sampling=pb.Sampling(enable_thinking=True),
            )
            pieces = stub.GenerateStream(thinking, metadata=metadata("thinking", 0x41), timeout=30)
            [*_, replies["thinking"]] = [piece async for piece in pieces]
            replies["private"] = await stub.Generate(
                pb.GenerateRequest(messages=[pb.Message(role="user", content="My secret plan")]),
                metadata=metadata("private", 0x61, (MD_CAPTURE_CONTENT, "false")),
                timeout=30,
            )
            replies["long"] = await stub.Generate(
                pb.GenerateRequest(messages=[pb.Message(role="user", content=LONG)]),
                metadata=metadata("long", 0x81),
                timeout=30,
            )
    finally:
        exit_code = await asyncio.to_thread(server.terminate)
        await upstream.stop()
    return Run(trace_ids, receiver.spans(), replies, exit_code, server.output())


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with OtlpReceiver() as receiver:
        yield asyncio.run(scenario(receiver))


def test_the_server_exited_cleanly(run: Run) -> None:
    assert run.exit_code == 0, run.logs


def test_input_system_instructions_tools_and_the_tool_call_reach_the_receiver(run: Run) -> None:
    assert run.json("tools", "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": ASK_WEATHER}]},
    ]
    assert run.json("tools", "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    [tool] = run.json("tools", "gen_ai.tool.definitions")
    assert (tool["name"], tool["description"]) == ("get_weather", "Weather of a city")
    reply = run.replies["tools"]
    [call] = reply.tool_calls
    assert run.json("tools", "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": {}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert run.chat("tools").attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]


def test_a_streamed_answer_is_captured_whole_with_its_reasoning(run: Run) -> None:
    [output] = run.json("thinking", "gen_ai.output.messages")
    assert output["parts"] == [
        {"type": "reasoning", "content": "The user said: Who are you?. I will say it back."},
        {"type": "text", "content": "Hello! You said: Who are you?"},
    ]
    chat = run.chat("thinking")
    assert (
        chat.attributes["gen_ai.usage.reasoning.output_tokens"]
        == run.replies["thinking"].usage.reasoning_tokens
    )
    server = next(s for s in run.spans if s.span_id == chat.parent_span_id)
    first_token = server.attributes["voxgate.generation.time_to_first_token_ms"]
    first_answer_token = server.attributes["voxgate.generation.time_to_first_answer_token_ms"]
    assert isinstance(first_token, float) and isinstance(first_answer_token, float)
    assert 0 < first_token < first_answer_token


def test_a_caller_that_asks_it_off_has_no_content_exported(run: Run) -> None:
    attributes = run.chat("private").attributes
    assert not CONTENT_KEYS & set(attributes)
    # Still counted, only not shown.
    assert attributes["gen_ai.usage.output_tokens"] == run.replies["private"].usage.output_tokens


def test_content_over_the_cap_is_cut_and_marked(run: Run) -> None:
    [message] = run.json("long", "gen_ai.input.messages")
    [part] = message["parts"]
    assert part["content"] == LONG[:MAX_CHARS] + f"…[truncated {len(LONG) - MAX_CHARS} chars]"
