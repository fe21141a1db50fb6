"""Prompt and answer content for traces, per the GenAI conventions' opt-in content capture.

Off unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``; then each ``chat``
span carries ``gen_ai.input.messages``, ``gen_ai.system_instructions``,
``gen_ai.tool.definitions`` and ``gen_ai.output.messages`` as JSON text in the conventions'
message shape (``{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", ...}]}``).
A caller keeps its own content out with the request metadata ``voxgate-capture-content:
false``. Each attribute is capped: text beyond :attr:`ContentCapture.max_chars` characters
(summed over the attribute) is cut and marked, so the JSON stays valid; inline image bytes
are never captured, only their type and size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from voxgate.generation.protocol import GenerationParams, ImagePart, Message, TextPart, Tool, ToolCall

MD_CAPTURE_CONTENT = "voxgate-capture-content"
"""Request metadata: ``false`` keeps this call's content out of traces, whatever the server's setting."""
TRUNCATED = "…[truncated {} chars]"


def capture_allowed(metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
    """False if the caller's metadata says ``voxgate-capture-content: false`` (or ``off``, ``0``)."""
    for key, value in metadata or ():
        if key == MD_CAPTURE_CONTENT:
            text = value.decode() if isinstance(value, bytes) else value
            if text.strip().lower() in ("false", "off", "0", "no"):
                return False
    return True


@dataclass(frozen=True, slots=True)
class ContentCapture:
    """What a ``chat`` span says of the content, as JSON attribute values."""

    max_chars: int = 16384

    def request(self, params: GenerationParams) -> dict[str, str]:
        messages = [_message(message) for message in params.messages]
        attributes = {"gen_ai.input.messages": self._json(messages)}
        system = [part for message in messages if message["role"] == "system" for part in message["parts"]]
        if system:
            attributes["gen_ai.system_instructions"] = self._json(system)
        if params.tools:
            attributes["gen_ai.tool.definitions"] = self._json([_tool(tool) for tool in params.tools])
        return attributes

    def response(
        self, text: str, reasoning: str, tool_calls: Sequence[ToolCall], finish_reason: str | None
    ) -> dict[str, str]:
        parts: list[dict[str, Any]] = []
        if reasoning:
            parts.append({"type": "reasoning", "content": reasoning})
        if text:
            parts.append({"type": "text", "content": text})
        parts.extend(_tool_call(call) for call in tool_calls)
        message = {"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}
        return {"gen_ai.output.messages": self._json([message])}

    def _json(self, value: list[dict[str, Any]]) -> str:
        budget = [self.max_chars]
        return json.dumps(_cap(value, budget), ensure_ascii=False)


def _message(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append({"type": "tool_call_response", "id": message.tool_call_id, "response": message.content})
    elif message.parts:
        parts.extend(_part(part) for part in message.parts)
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    parts.extend(_tool_call(call) for call in message.tool_calls)
    return {"role": message.role, "parts": parts}


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "content": part.text}
    if part.url.startswith("data:"):
        mime = part.url[len("data:") :].partition(";")[0]
        size = len(part.url.partition(",")[2]) * 3 // 4
        return {"type": "blob", "modality": "image", "mime_type": mime, "content": "", "size_bytes": size}
    return {"type": "uri", "modality": "image", "uri": part.url}


def _tool_call(call: ToolCall) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments  # as the model wrote it
    return {"type": "tool_call", "id": call.id, "name": call.name, "arguments": arguments}


def _tool(tool: Tool) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description:
        definition["description"] = tool.description
    if tool.parameters:
        definition["parameters"] = json.loads(tool.parameters)
    return definition


_CONTENT_KEYS = frozenset({"content", "response", "uri", "arguments", "description", "parameters"})
"""Where content lives; roles, types, ids and names are structure and are never cut."""


def _cap(value: Any, budget: list[int], content: bool = False) -> Any:
    """``value`` with its content strings cut so that, in order, they add up to at most ``budget[0]``."""
    if isinstance(value, str):
        if not content:
            return value
        keep = max(budget[0], 0)
        budget[0] -= len(value)
        return value if len(value) <= keep else value[:keep] + TRUNCATED.format(len(value) - keep)
    if isinstance(value, list):
        return [_cap(item, budget, content) for item in value]
    if isinstance(value, dict):
        return {key: _cap(item, budget, content or key in _CONTENT_KEYS) for key, item in value.items()}
    return value
