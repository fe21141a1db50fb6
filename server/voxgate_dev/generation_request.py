"""Parses a generation request body the way the service checks it
(docs/protocol.md#request-body and #error-codes).

:func:`parse_generation` returns a :class:`GenerationSpec` or raises
:class:`~voxgate_dev.speech_request.RequestError` with the code and message the
service uses, answered as HTTP 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .images import describe
from .local_model import MODELS, MULTIMODAL_MODELS
from .speech_request import CODE_INVALID_PARAMETER, RequestError

RESULT_FORMATS = ("text", "message")
ERROR_EMPTY_MODEL = 'Required parameter "model" missing from request.'
ERROR_EMPTY_INPUT = "Required input parameter missing from request."
ERROR_MODEL_NOT_FOUND = "Model not exist."


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    model: str
    messages: tuple[tuple[str, str], ...]
    """(role, text), oldest first; a bare ``prompt`` becomes a final user message (the SDK's way)."""
    result_format: str = "text"
    incremental_output: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    multimodal: bool = False
    """Asked on the multimodal endpoint: content comes and goes as lists of parts."""
    enable_thinking: bool = False
    tools: tuple[str, ...] = ()
    """The names of the functions offered."""
    images: tuple[str, ...] = ()
    """What the images of the last user message are (see :func:`~voxgate_dev.images.describe`)."""


def parse_generation(body: bytes, *, multimodal: bool = False) -> GenerationSpec:
    try:
        document = json.loads(body)
    except ValueError:
        raise _invalid("request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _invalid("request body must be a JSON object")
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("BadRequest.EmptyModel", ERROR_EMPTY_MODEL)
    if model not in (MULTIMODAL_MODELS if multimodal else MODELS):
        raise _invalid(ERROR_MODEL_NOT_FOUND)
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _invalid("parameters must be an object")
    # The multimodal endpoint answers in the message format whatever was asked.
    result_format = "message" if multimodal else parameters.get("result_format", "text")
    if result_format not in RESULT_FORMATS:
        raise _invalid(f"result_format must be one of {', '.join(RESULT_FORMATS)}")
    messages, images = _messages(document.get("input"))
    return GenerationSpec(
        model=model,
        messages=messages,
        result_format=result_format,
        incremental_output=parameters.get("incremental_output") is True,
        max_tokens=_max_tokens(parameters.get("max_tokens")),
        stop=_stop(parameters.get("stop")),
        multimodal=multimodal,
        enable_thinking=parameters.get("enable_thinking") is True,
        tools=_tools(parameters.get("tools")),
        images=images,
    )


def _messages(task_input: Any) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    if not isinstance(task_input, dict):
        raise RequestError("BadRequest.EmptyInput", ERROR_EMPTY_INPUT)
    raw = task_input.get("messages") or []
    if not isinstance(raw, list):
        raise _invalid("input.messages must be an array")
    messages: list[tuple[str, str]] = []
    images: tuple[str, ...] = ()
    for message in raw:
        if not isinstance(message, dict):
            raise _invalid("input.messages must hold objects")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant", "tool"):
            raise _invalid("each message needs a role and a content")
        if content is None and role == "assistant" and message.get("tool_calls"):
            content = ""
        if isinstance(content, list):
            text, seen = _parts(content)
            if role == "user":
                images = seen
            content = text
        if not isinstance(content, str):
            raise _invalid("each message needs a role and a content")
        messages.append((role, content))
    prompt = task_input.get("prompt")
    if isinstance(prompt, str) and prompt:
        messages.append(("user", prompt))
    if not messages:
        raise RequestError("BadRequest.EmptyInput", ERROR_EMPTY_INPUT)
    return tuple(messages), images


def _parts(content: list[Any]) -> tuple[str, tuple[str, ...]]:
    """A multimodal content list: its text, and what its images are."""
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise _invalid("a content list must hold objects")
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("image"), str):
            images.append(describe(part["image"]))
        else:
            raise _invalid("each content part needs a text or an image")
    return " ".join(texts), tuple(images)


def _tools(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid("tools must be an array")
    names: list[str] = []
    for tool in value:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid("each tool needs a function with a name")
        names.append(function["name"])
    return tuple(names)


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid("max_tokens must be an integer >= 1")
    return value


def _stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _invalid("stop must be a string or an array of strings")


def _invalid(message: str) -> RequestError:
    return RequestError(CODE_INVALID_PARAMETER, message)
