"""The generation request as the SDK sends it, both result formats, and error bodies
(docs/protocol.md#generation-http-api)."""

from __future__ import annotations

import json

import pytest

from voxgate.generation.protocol import (
    GenerationParams,
    Message,
    Result,
    Sampling,
    UpstreamProtocolError,
    Usage,
    parse_error,
    parse_result,
    request_body,
    request_headers,
)

PARAMS = GenerationParams(
    model="qwen-plus",
    messages=(Message("system", "You are a helpful assistant."), Message("user", "你好")),
)


def test_streaming_headers_ask_for_sse_both_ways() -> None:
    headers = request_headers("sk-x", stream=True)
    assert headers["Authorization"] == "Bearer sk-x"
    assert headers["X-DashScope-SSE"] == "enable"
    assert headers["Accept"] == "text/event-stream"
    assert "X-DashScope-SSE" not in request_headers("sk-x", stream=False)


def test_body_has_the_sdks_key_order_utf8_and_only_the_set_parameters() -> None:
    body = request_body(PARAMS, stream=False)
    assert "你好".encode() in body  # not \\u-escaped
    document = json.loads(body)
    assert list(document) == ["model", "parameters", "input"]
    assert document["parameters"] == {"result_format": "message"}
    assert document["input"]["messages"][1] == {"role": "user", "content": "你好"}


def test_streaming_body_asks_for_deltas_and_sends_sampling() -> None:
    sampling = Sampling(
        max_tokens=3, temperature=0.7, top_k=20, seed=1, stop=("\n\n",), enable_thinking=False
    )
    params = GenerationParams(model=PARAMS.model, messages=PARAMS.messages, sampling=sampling)
    parameters = json.loads(request_body(params, stream=True))["parameters"]
    assert parameters == {
        "result_format": "message",
        "max_tokens": 3,
        "temperature": 0.7,
        "top_k": 20,
        "seed": 1,
        "enable_thinking": False,
        "stop": ["\n\n"],
        "incremental_output": True,
    }


def test_message_format_result() -> None:
    data = (
        '{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"Hi"}}]},'
        '"usage":{"input_tokens":5,"output_tokens":1,"total_tokens":6},"request_id":"r1"}'
    )
    assert parse_result(data) == Result("Hi", "stop", Usage(5, 1, 6), "r1")


def test_text_format_result_and_the_streaming_null() -> None:
    data = '{"output":{"text":"Hi","finish_reason":"null"},"usage":{"input_tokens":2,"output_tokens":1}}'
    assert parse_result(data) == Result("Hi", None, Usage(2, 1, 3), "")


@pytest.mark.parametrize("data", ['{"usage":{}}', '{"output":null}', "[1]", "not json"])
def test_a_result_without_output_is_a_protocol_error(data: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_result(data)


def test_error_body_keeps_code_message_and_request_id() -> None:
    error = parse_error(429, '{"request_id":"r2","code":"Throttling.RateQuota","message":"slow down"}')
    assert (error.http_status, error.code, error.message, error.request_id) == (
        429,
        "Throttling.RateQuota",
        "slow down",
        "r2",
    )


def test_a_non_json_error_body_is_code_unknown() -> None:
    error = parse_error(502, b"<html>Bad Gateway</html>")
    assert (error.code, error.message) == ("Unknown", "<html>Bad Gateway</html>")
