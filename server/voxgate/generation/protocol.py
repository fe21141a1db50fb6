"""DashScope text generation on the wire, without I/O (docs/protocol.md#generation-http-api).

:func:`request_headers` and :func:`request_body` build exactly what the vendor SDK sends;
:func:`parse_result` reads one result (a JSON response or one SSE ``data:``) in either
result format; :func:`parse_error` reads an error body (JSON or SSE-bodied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

GENERATION_PATH = "/services/aigc/text-generation/generation"
"""Appended to the HTTP base URL (``…/api/v1``), as the SDK does (docs/protocol.md#generation-endpoint)."""
FINISH_NOT_YET = "null"
"""While streaming, ``finish_reason`` is the *string* "null" until the last chunk
(docs/protocol.md#sse-stream)."""
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Sampling:
    """Parameters sent only when set (the SDK sends only what was passed: docs/protocol.md#request-body)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    enable_thinking: bool | None = None


@dataclass(frozen=True, slots=True)
class GenerationParams:
    model: str
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Result:
    """One result: the whole answer (JSON) or one SSE chunk (with ``incremental_output`` a delta).

    ``finish_reason`` is None while a stream goes on (the wire's "null").
    """

    text: str
    finish_reason: str | None
    usage: Usage
    request_id: str


class UpstreamError(Exception):
    """The upstream answered with an error: an HTTP error status, or ``event:error`` mid-stream
    (``http_status`` None)."""

    def __init__(self, http_status: int | None, code: str, message: str, request_id: str) -> None:
        where = f"HTTP {http_status}" if http_status is not None else "mid-stream"
        super().__init__(f"{where} {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.request_id = request_id


class UpstreamUnavailable(Exception):
    """No answer: connect failure, connection lost, or the upstream too slow (our HTTP timeouts)."""


class UpstreamProtocolError(Exception):
    """The upstream answered something this protocol does not allow."""


def request_headers(api_key: str, *, stream: bool) -> dict[str, str]:
    """Headers of one call. Streaming asks for SSE both ways, as the SDK does
    (docs/protocol.md#request-headers)."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "text/event-stream" if stream else "application/json; charset=utf-8",
    }
    if stream:
        headers["X-Accel-Buffering"] = "no"
        headers["X-DashScope-SSE"] = "enable"
    return headers


def request_body(params: GenerationParams, *, stream: bool) -> bytes:
    """``{"model", "parameters", "input": {"messages"}}``, UTF-8, not ASCII-escaped
    (docs/protocol.md#request-body)."""
    sampling = params.sampling
    parameters: dict[str, Any] = {"result_format": "message"}
    for name in (
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "presence_penalty",
        "repetition_penalty",
        "enable_thinking",
    ):
        value = getattr(sampling, name)
        if value is not None:
            parameters[name] = value
    if sampling.stop:
        parameters["stop"] = list(sampling.stop)
    if stream:
        parameters["incremental_output"] = True  # deltas, not the text so far
    body = {
        "model": params.model,
        "parameters": parameters,
        "input": {"messages": [{"role": m.role, "content": m.content} for m in params.messages]},
    }
    return json.dumps(body, ensure_ascii=False).encode()


def parse_result(data: str | bytes) -> Result:
    """A result in ``message`` format (``output.choices[0]``) or ``text`` format (``output.text``)."""
    document = _json_object(data)
    output = document.get("output")
    if not isinstance(output, dict):
        raise UpstreamProtocolError("result without an 'output' object")
    choices = output.get("choices")
    if isinstance(choices, list) and choices:
        choice = choices[0]
        if not isinstance(choice, dict) or not isinstance(choice.get("message", {}), dict):
            raise UpstreamProtocolError("malformed output.choices[0]")
        text = choice.get("message", {}).get("content") or ""
        finish = choice.get("finish_reason")
    else:
        text = output.get("text") or ""
        finish = output.get("finish_reason")
    if not isinstance(text, str):
        raise UpstreamProtocolError("result content is not a string")
    return Result(
        text=text,
        finish_reason=None if finish in (None, "", FINISH_NOT_YET) else str(finish),
        usage=_usage(document.get("usage")),
        request_id=str(document.get("request_id") or ""),
    )


def parse_error(http_status: int | None, data: str | bytes) -> UpstreamError:
    """An error from a JSON body ``{request_id, code, message}`` (``msg`` too, as the SDK reads it)."""
    try:
        document = _json_object(data)
    except UpstreamProtocolError:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        return UpstreamError(http_status, "Unknown", text.strip()[:500], "")
    return UpstreamError(
        http_status,
        str(document.get("code") or "Unknown"),
        str(document.get("message") or document.get("msg") or ""),
        str(document.get("request_id") or ""),
    )


def _usage(value: object) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    input_tokens = _count(value.get("input_tokens"))
    output_tokens = _count(value.get("output_tokens"))
    total = _count(value.get("total_tokens")) or input_tokens + output_tokens
    return Usage(input_tokens, output_tokens, total)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _json_object(data: str | bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise UpstreamProtocolError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UpstreamProtocolError("not a JSON object")
    return document
