"""DashScope text generation on the wire, without I/O (docs/protocol.md#generation-http-api).

:func:`request_headers` and :func:`request_body` build exactly what the vendor SDK sends
(``Generation`` for text models, ``MultiModalConversation`` for multimodal ones, see
:mod:`voxgate.generation.multimodal`); :func:`parse_result` reads one result (a JSON response
or one SSE ``data:``) in either result format, with its reasoning and tool-call pieces;
:func:`parse_error` reads an error body (JSON or SSE-bodied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

GENERATION_PATH = "/services/aigc/text-generation/generation"
"""Appended to the HTTP base URL (``…/api/v1``), as the SDK does (docs/protocol.md#generation-endpoint)."""
MULTIMODAL_PATH = "/services/aigc/multimodal-generation/generation"
"""Where the SDK's ``MultiModalConversation`` sends multimodal models (qwen-vl, qwen-omni...)."""
WORKSPACE_HEADER = "X-DashScope-WorkSpace"
"""The SDK's header for ``workspace=...``, on HTTP calls and the WebSocket handshake alike."""
FINISH_NOT_YET = "null"
"""While streaming, ``finish_reason`` is the *string* "null" until the last chunk
(docs/protocol.md#sse-stream)."""
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    url: str
    """What the upstream gets: an http(s) or oss:// URL, or a ``data:`` URL of inline bytes."""


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call: ``arguments`` is the model's JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallPiece:
    """A tool call as one result carries it: whole in an answer, a piece of it in a stream.

    Pieces with the same ``index`` add up to one call (:class:`~voxgate.generation.tools.ToolCallAssembler`).
    """

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: str = ""
    """A JSON Schema object as JSON text (checked by validation); empty for none."""


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    parts: tuple[Part, ...] = ()
    """Set instead of ``content`` for text-and-image messages."""
    tool_call_id: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


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
    tools: tuple[Tool, ...] = ()
    tool_choice: str = ""
    """"auto", "none", a tool's name, or empty (not sent: the service's default, auto)."""
    multimodal: bool = False
    """Sent to :data:`MULTIMODAL_PATH`, every message's content as a list of parts."""

    @property
    def path(self) -> str:
        return MULTIMODAL_PATH if self.multimodal else GENERATION_PATH


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    """Of ``output_tokens``, reasoning (``output_tokens_details.reasoning_tokens``)."""


@dataclass(frozen=True, slots=True)
class Result:
    """One result: the whole answer (JSON) or one SSE chunk (with ``incremental_output`` a delta).

    ``finish_reason`` is None while a stream goes on (the wire's "null").
    """

    text: str
    finish_reason: str | None
    usage: Usage
    request_id: str
    reasoning: str = ""
    """``message.reasoning_content``: thinking mode's reasoning (a delta when streamed)."""
    tool_calls: tuple[ToolCallPiece, ...] = ()


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


class UpstreamTimedOut(UpstreamUnavailable):
    """Our HTTP timeout struck. ``request_sent``: after the whole request had gone out, so the
    upstream may be generating (and billing) the answer anyway; ``retryable`` says whether
    another attempt is allowed (for a sent request only if the operator opted in)."""

    def __init__(self, message: str, *, request_sent: bool, retryable: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.retryable = retryable


class UpstreamProtocolError(Exception):
    """The upstream answered something this protocol does not allow."""


def request_headers(api_key: str, *, stream: bool, workspace: str = "") -> dict[str, str]:
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
    if workspace:
        headers[WORKSPACE_HEADER] = workspace
    return headers


def request_body(params: GenerationParams, *, stream: bool) -> bytes:
    """``{"model", "parameters", "input": {"messages"}}``, UTF-8, not ASCII-escaped
    (docs/protocol.md#request-body)."""
    sampling = params.sampling
    # The multimodal endpoint always answers in the message format; MultiModalConversation
    # sends no result_format.
    parameters: dict[str, Any] = {} if params.multimodal else {"result_format": "message"}
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
    if params.tools:
        parameters["tools"] = tools_json(params.tools)
    if params.tool_choice:
        parameters["tool_choice"] = tool_choice_json(params.tool_choice)
    if stream:
        parameters["incremental_output"] = True  # deltas, not the text so far
    body = {
        "model": params.model,
        "parameters": parameters,
        "input": {"messages": [message_json(m, multimodal=params.multimodal) for m in params.messages]},
    }
    return json.dumps(body, ensure_ascii=False).encode()


def message_json(message: Message, *, multimodal: bool) -> dict[str, Any]:
    """One message as the SDK sends it: multimodal content is a list of ``{"text"}`` /
    ``{"image"}`` parts (``MultiModalConversation``'s format), text content a string."""
    content: str | list[dict[str, str]]
    if multimodal and message.role != "tool":
        parts = message.parts or ((TextPart(message.content),) if message.content else ())
        content = [{"text": p.text} if isinstance(p, TextPart) else {"image": p.url} for p in parts]
    else:
        content = message.content
    document: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls:
        document["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        document["tool_call_id"] = message.tool_call_id
    return document


def tools_json(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    """OpenAI-style function tools, as the SDK passes ``tools=[...]`` through."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = json.loads(tool.parameters) if tool.parameters else {"type": "object"}
        out.append({"type": "function", "function": function})
    return out


def tool_choice_json(choice: str) -> str | dict[str, Any]:
    """ "auto" and "none" as they are; a tool's name as the object that forces that tool."""
    if choice in ("auto", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


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
        message = choice.get("message") or {}
        text = _content_text(message.get("content"))
        reasoning = message.get("reasoning_content") or ""
        tool_calls = _tool_call_pieces(message.get("tool_calls"))
        finish = choice.get("finish_reason")
    else:
        text = output.get("text") or ""
        reasoning, tool_calls = "", ()
        finish = output.get("finish_reason")
    if not isinstance(text, str) or not isinstance(reasoning, str):
        raise UpstreamProtocolError("result content is not a string")
    return Result(
        text=text,
        finish_reason=None if finish in (None, "", FINISH_NOT_YET) else str(finish),
        usage=_usage(document.get("usage")),
        request_id=str(document.get("request_id") or ""),
        reasoning=reasoning,
        tool_calls=tool_calls,
    )


def _content_text(content: object) -> str:
    """A string, or (multimodal models) a list of parts whose ``text`` parts make the answer."""
    if content is None:
        return ""
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    if not isinstance(content, str):
        raise UpstreamProtocolError("result content is neither a string nor a list of parts")
    return content


def _tool_call_pieces(value: object) -> tuple[ToolCallPiece, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UpstreamProtocolError("message.tool_calls is not a list")
    pieces: list[ToolCallPiece] = []
    for position, call in enumerate(value):
        if not isinstance(call, dict):
            raise UpstreamProtocolError("message.tool_calls holds a non-object")
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise UpstreamProtocolError("tool_calls[].function is not an object")
        index = call.get("index", position)
        pieces.append(
            ToolCallPiece(
                index=index if isinstance(index, int) else position,
                id=str(call.get("id") or ""),
                name=str(function.get("name") or ""),
                arguments=str(function.get("arguments") or ""),
            )
        )
    return tuple(pieces)


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
    details = value.get("output_tokens_details")
    reasoning = _count(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    return Usage(input_tokens, output_tokens, total, reasoning)


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
