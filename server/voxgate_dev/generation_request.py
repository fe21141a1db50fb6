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

from .local_model import MODELS
from .speech_request import CODE_INVALID_PARAMETER, RequestError

RESULT_FORMATS = ("text", "message")
ERROR_EMPTY_MODEL = 'Required parameter "model" missing from request.'
ERROR_EMPTY_INPUT = "Required input parameter missing from request."
ERROR_MODEL_NOT_FOUND = "Model not exist."


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    model: str
    messages: tuple[tuple[str, str], ...]
    """(role, content), oldest first; a bare ``prompt`` becomes a final user message (the SDK's way)."""
    result_format: str = "text"
    incremental_output: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


def parse_generation(body: bytes) -> GenerationSpec:
    try:
        document = json.loads(body)
    except ValueError:
        raise _invalid("request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _invalid("request body must be a JSON object")
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("BadRequest.EmptyModel", ERROR_EMPTY_MODEL)
    if model not in MODELS:
        raise _invalid(ERROR_MODEL_NOT_FOUND)
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _invalid("parameters must be an object")
    result_format = parameters.get("result_format", "text")
    if result_format not in RESULT_FORMATS:
        raise _invalid(f"result_format must be one of {', '.join(RESULT_FORMATS)}")
    return GenerationSpec(
        model=model,
        messages=_messages(document.get("input")),
        result_format=result_format,
        incremental_output=parameters.get("incremental_output") is True,
        max_tokens=_max_tokens(parameters.get("max_tokens")),
        stop=_stop(parameters.get("stop")),
    )


def _messages(task_input: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(task_input, dict):
        raise RequestError("BadRequest.EmptyInput", ERROR_EMPTY_INPUT)
    raw = task_input.get("messages") or []
    if not isinstance(raw, list):
        raise _invalid("input.messages must be an array")
    messages: list[tuple[str, str]] = []
    for message in raw:
        if not isinstance(message, dict):
            raise _invalid("input.messages must hold objects")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant", "tool") or not isinstance(content, str):
            raise _invalid("each message needs a role and a string content")
        messages.append((role, content))
    prompt = task_input.get("prompt")
    if isinstance(prompt, str) and prompt:
        messages.append(("user", prompt))
    if not messages:
        raise RequestError("BadRequest.EmptyInput", ERROR_EMPTY_INPUT)
    return tuple(messages)


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
