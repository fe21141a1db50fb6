"""Checks a GenerateRequest / GenerateStreamRequest and resolves its defaults, before any
upstream work. Ranges are the service's documented ones (docs/protocol.md#request-body), so a bad request
fails fast with ``"<field>: <reason>"`` instead of costing an upstream round trip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from voxgate.generation.multimodal import DEFAULT_MULTIMODAL_PREFIXES, check_parts, is_multimodal
from voxgate.generation.protocol import ROLES, GenerationParams, ImagePart, Message, Sampling
from voxgate.generation.tools import check_tool_calls, check_tools
from voxgate.generation.v1 import generation_pb2
from voxgate.speech.validation import InvalidRequest, check_name

MAX_STOP_SEQUENCES = 4
MAX_SEED = 2**31 - 1
MAX_TOP_K = 100

AnyGenerateRequest = generation_pb2.GenerateRequest | generation_pb2.GenerateStreamRequest


def generation_params(
    request: AnyGenerateRequest,
    default_model: str,
    multimodal_prefixes: Iterable[str] = DEFAULT_MULTIMODAL_PREFIXES,
) -> GenerationParams:
    """Validate ``request``; raises :class:`InvalidRequest` naming the first bad field."""
    model = check_name("model", request.model or default_model)
    messages = _messages(request.messages)
    tools, tool_choice = check_tools(request.tools, request.tool_choice)
    has_image = any(isinstance(part, ImagePart) for message in messages for part in message.parts)
    return GenerationParams(
        model=model,
        messages=messages,
        sampling=_sampling(request.sampling) if request.HasField("sampling") else Sampling(),
        tools=tools,
        tool_choice=tool_choice,
        multimodal=has_image or is_multimodal(model, multimodal_prefixes),
    )


def _messages(messages: Iterable[generation_pb2.Message]) -> tuple[Message, ...]:
    checked: list[Message] = []
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        role = message.role
        if role not in ROLES:
            raise InvalidRequest(f"{field}.role", f"must be one of {', '.join(ROLES)}")
        if message.content and message.parts:
            raise InvalidRequest(f"{field}.parts", "set content or parts, not both")
        parts = check_parts(field, role, message.parts)
        text = message.content + "".join(getattr(part, "text", "") for part in parts)
        has_image = any(isinstance(part, ImagePart) for part in parts)
        if not text.strip() and not has_image and role != "assistant":
            raise InvalidRequest(f"{field}.content", "must not be empty")
        if message.tool_calls and role != "assistant":
            raise InvalidRequest(f"{field}.tool_calls", "only assistant messages carry tool calls")
        tool_calls = check_tool_calls(field, message.tool_calls)
        call_ids.update(call.id for call in tool_calls)
        if role == "tool":
            if not message.tool_call_id:
                raise InvalidRequest(f"{field}.tool_call_id", "required for role tool")
            if message.tool_call_id not in call_ids:
                raise InvalidRequest(
                    f"{field}.tool_call_id",
                    f"{message.tool_call_id!r} is not the id of a tool call of an earlier assistant message",
                )
        elif message.tool_call_id:
            raise InvalidRequest(f"{field}.tool_call_id", "allowed for role tool only")
        checked.append(Message(role, message.content, parts, message.tool_call_id, tool_calls))
    if not checked:
        raise InvalidRequest("messages", "at least one message is required")
    return tuple(checked)


def _sampling(sampling: generation_pb2.Sampling) -> Sampling:
    def has(name: str) -> bool:
        return sampling.HasField(name)

    if len(sampling.stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest("sampling.stop", f"at most {MAX_STOP_SEQUENCES} sequences")
    for index, sequence in enumerate(sampling.stop):
        if not sequence:
            raise InvalidRequest(f"sampling.stop[{index}]", "must not be empty")
    if has("max_tokens") and sampling.max_tokens < 1:
        raise InvalidRequest("sampling.max_tokens", "must be >= 1")
    if has("top_k") and sampling.top_k > MAX_TOP_K:
        raise InvalidRequest("sampling.top_k", f"{sampling.top_k} is outside [0, {MAX_TOP_K}]")
    if has("seed") and sampling.seed > MAX_SEED:
        raise InvalidRequest("sampling.seed", f"{sampling.seed} is outside [0, {MAX_SEED}]")
    return Sampling(
        max_tokens=sampling.max_tokens if has("max_tokens") else None,
        temperature=_float("temperature", sampling.temperature, 0.0, 2.0, high_open=True)
        if has("temperature")
        else None,
        top_p=_float("top_p", sampling.top_p, 0.0, 1.0, low_open=True) if has("top_p") else None,
        top_k=sampling.top_k if has("top_k") else None,
        seed=sampling.seed if has("seed") else None,
        stop=tuple(sampling.stop),
        presence_penalty=_float("presence_penalty", sampling.presence_penalty, -2.0, 2.0)
        if has("presence_penalty")
        else None,
        repetition_penalty=_float(
            "repetition_penalty", sampling.repetition_penalty, 0.0, math.inf, low_open=True
        )
        if has("repetition_penalty")
        else None,
        enable_thinking=sampling.enable_thinking if has("enable_thinking") else None,
    )


def _float(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidRequest(f"sampling.{name}", f"{value:g} is outside {interval}")
    return round(value, 4)  # float32 on the wire: 0.7 arrives as 0.699999988079071
