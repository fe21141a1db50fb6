"""Multimodal parts, reasoning, tool calls, timeouts and content capture, without I/O."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from voxgate import config
from voxgate.generation.content import MD_CAPTURE_CONTENT, ContentCapture, capture_allowed
from voxgate.generation.errors import classify_generation as classify
from voxgate.generation.multimodal import DEFAULT_MULTIMODAL_PREFIXES, image_type, is_multimodal
from voxgate.generation.protocol import (
    GENERATION_PATH,
    MULTIMODAL_PATH,
    GenerationParams,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    ToolCallPiece,
    UpstreamTimedOut,
    Usage,
    parse_result,
    request_body,
    request_headers,
)
from voxgate.generation.tools import ToolCallAssembler
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate.generation.validation import generation_params
from voxgate_dev.images import describe

# --- parsing what the service answers --------------------------------------------------------


def test_a_multimodal_result_is_a_list_of_parts_whose_text_is_the_answer() -> None:
    data = {
        "output": {
            "choices": [{"finish_reason": "stop", "message": {"content": [{"text": "A "}, {"text": "cat"}]}}]
        },
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    result = parse_result(json.dumps(data))
    assert (result.text, result.finish_reason) == ("A cat", "stop")


def test_reasoning_and_its_token_count_are_read() -> None:
    data = {
        "output": {
            "choices": [
                {"finish_reason": "null", "message": {"content": "", "reasoning_content": "Let me think"}}
            ]
        },
        "usage": {"input_tokens": 1, "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 3}},
    }
    result = parse_result(json.dumps(data))
    assert (result.reasoning, result.text, result.finish_reason) == ("Let me think", "", None)
    assert result.usage == Usage(1, 3, 4, 3)


def test_tool_call_pieces_are_read_and_assembled_by_index() -> None:
    def chunk(*calls: dict[str, object]) -> str:
        message = {"content": "", "tool_calls": list(calls)}
        return json.dumps({"output": {"choices": [{"finish_reason": "null", "message": message}]}})

    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x"'}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    rest = {"index": 0, "id": "", "type": "function", "function": {"arguments": ": 1}"}}
    assembler = ToolCallAssembler()
    for data in (chunk(first), chunk(second), chunk(rest)):
        assembler.add(parse_result(data).tool_calls)
    assert assembler.calls() == (ToolCall("call_a", "f", '{"x": 1}'), ToolCall("call_b", "g", "{}"))
    assert parse_result(chunk(second)).tool_calls == (ToolCallPiece(1, "call_b", "g", "{}"),)


# --- building what the SDK sends ---------------------------------------------------------------


def test_multimodal_requests_go_to_their_endpoint_with_parts() -> None:
    params = GenerationParams(
        model="qwen3-vl-plus",
        messages=(
            Message("system", "Be brief."),
            Message("user", "", parts=(ImagePart("https://x/cat.png"), TextPart("What?"))),
        ),
        multimodal=True,
    )
    document = json.loads(request_body(params, stream=False))
    assert params.path == MULTIMODAL_PATH
    assert document["parameters"] == {}  # MultiModalConversation sends no result_format
    assert document["input"]["messages"] == [
        {"role": "system", "content": [{"text": "Be brief."}]},
        {"role": "user", "content": [{"image": "https://x/cat.png"}, {"text": "What?"}]},
    ]


def test_tools_tool_choice_and_tool_messages_take_the_sdks_shape() -> None:
    params = GenerationParams(
        model="qwen-plus",
        messages=(
            Message("assistant", "", tool_calls=(ToolCall("c1", "f", "{}"),)),
            Message("tool", "42", tool_call_id="c1"),
        ),
        tools=(Tool("f", "does f"), Tool("g", parameters='{"type": "object", "properties": {}}')),
        tool_choice="g",
    )
    document = json.loads(request_body(params, stream=True))
    assert params.path == GENERATION_PATH
    assert document["parameters"]["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}},
        },
        {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert document["parameters"]["tool_choice"] == {"type": "function", "function": {"name": "g"}}
    assert document["input"]["messages"] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]


def test_the_workspace_header_only_when_set() -> None:
    assert request_headers("k", stream=False, workspace="ws-1")["X-DashScope-WorkSpace"] == "ws-1"
    assert "X-DashScope-WorkSpace" not in request_headers("k", stream=False)


# --- routing and images --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [("qwen3-vl-plus", True), ("qwen-omni-turbo", True), ("qwen3.6-plus", True), ("qwen-plus", False)],
)
def test_multimodal_families_are_routed_by_prefix(model: str, expected: bool) -> None:
    assert is_multimodal(model, DEFAULT_MULTIMODAL_PREFIXES) is expected


def test_a_request_with_an_image_goes_multimodal_whatever_its_model() -> None:
    image = pb.ContentPart(image=b"\xff\xd8\xff\xe0 a jpeg")
    request = pb.GenerateRequest(model="my-vl", messages=[pb.Message(role="user", parts=[image])])
    params = generation_params(request, "qwen-plus")
    assert params.multimodal
    [part] = params.messages[0].parts
    assert isinstance(part, ImagePart) and part.url.startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xdb", "image/jpeg"),
        (b"GIF89a..", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"BM......", "image/bmp"),
        (b"%PDF-1.7", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
    ],
)
def test_image_types_are_recognised_by_their_first_bytes(data: bytes, mime: str | None) -> None:
    assert image_type(data) == mime


def test_the_embedded_model_reads_the_size_of_a_png_and_echoes_a_url() -> None:
    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (640).to_bytes(4, "big") + (480).to_bytes(4, "big")
    assert describe("data:image/png;base64," + base64.b64encode(header).decode()) == "640x480 PNG"
    assert describe("https://example.com/a.jpg") == "https://example.com/a.jpg"


# --- timeouts ----------------------------------------------------------------------------------


def test_a_timeout_after_sending_is_deadline_exceeded_retried_only_if_allowed() -> None:
    sent = classify(UpstreamTimedOut("slow", request_sent=True, retryable=False))
    assert (sent.code, sent.retryable) == (grpc.StatusCode.DEADLINE_EXCEEDED, False)
    opted_in = classify(UpstreamTimedOut("slow", request_sent=True, retryable=True))
    assert opted_in.retryable
    unsent = classify(UpstreamTimedOut("no connection", request_sent=False, retryable=True))
    assert (unsent.code, unsent.retryable) == (grpc.StatusCode.UNAVAILABLE, True)


def test_the_new_settings_parse_and_default() -> None:
    defaults = config.load({})
    assert (defaults.workspace, defaults.http_retry_sent_timeouts) == (None, False)
    assert defaults.multimodal_model_prefixes == DEFAULT_MULTIMODAL_PREFIXES
    settings = config.load(
        {
            "DASHSCOPE_WORKSPACE": "ws-1",
            "VOXGATE_HTTP_RETRY_SENT_TIMEOUTS": "true",
            "VOXGATE_MULTIMODAL_MODEL_PREFIXES": "qwen-vl, my-vl ,",
            "VOXGATE_TRACE_CONTENT_MAX_CHARS": "100",
        }
    )
    assert (settings.workspace, settings.http_retry_sent_timeouts) == ("ws-1", True)
    assert (settings.multimodal_model_prefixes, settings.trace_content_max_chars) == (
        ("qwen-vl", "my-vl"),
        100,
    )
    with pytest.raises(config.ConfigError, match=r"^VOXGATE_HTTP_RETRY_SENT_TIMEOUTS: must be true or false"):
        config.load({"VOXGATE_HTTP_RETRY_SENT_TIMEOUTS": "maybe"})


# --- content capture -----------------------------------------------------------------------------


def test_content_takes_the_genai_message_shape_and_is_capped() -> None:
    capture = ContentCapture(max_chars=10)
    params = GenerationParams(
        model="m",
        messages=(Message("system", "Be brief."), Message("user", "x" * 20)),
        tools=(Tool("f", "does f"),),
    )
    attributes = capture.request(params)
    system, user = json.loads(attributes["gen_ai.input.messages"])
    assert system == {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
    assert user["parts"] == [{"type": "text", "content": "x" + "…[truncated 19 chars]"}]  # 9 + 1 = 10
    assert json.loads(attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attributes["gen_ai.tool.definitions"])[0]["name"] == "f"
    [output] = json.loads(
        capture.response("Hi", "Hmm", (ToolCall("c", "f", '{"a": 1}'),), "tool_calls")[
            "gen_ai.output.messages"
        ]
    )
    assert output == {
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "content": "Hmm"},
            {"type": "text", "content": "Hi"},
            {"type": "tool_call", "id": "c", "name": "f", "arguments": {"a": 1}},
        ],
        "finish_reason": "tool_calls",
    }


def test_a_caller_can_keep_its_content_out() -> None:
    assert capture_allowed([("other", "x")]) and capture_allowed(None)
    assert not capture_allowed([(MD_CAPTURE_CONTENT, "false")])
