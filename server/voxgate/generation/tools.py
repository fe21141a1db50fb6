"""Tool calls (function calling): checking a request's tools, and assembling the calls a
stream delivers in pieces.

DashScope streams a tool call as pieces with the same ``index``: the first carries the call's
``id`` and function ``name``, every one a piece of the ``arguments`` JSON text (with
``incremental_output``, each piece is new text). :class:`ToolCallAssembler` adds them up in
the order the service sent them; an answer (not streamed) is one piece per call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from voxgate.generation.protocol import Tool, ToolCall, ToolCallPiece
from voxgate.generation.v1 import generation_pb2
from voxgate.speech.validation import InvalidRequest

MAX_TOOLS = 128
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_CHOICES = ("auto", "none")


class ToolCallAssembler:
    """Pieces in (:meth:`add`), whole calls out (:meth:`calls`), ordered by index."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._arguments: dict[int, list[str]] = {}

    def add(self, pieces: Iterable[ToolCallPiece]) -> None:
        for piece in pieces:
            if piece.id:
                self._ids[piece.index] = piece.id
            if piece.name:
                self._names[piece.index] = piece.name
            self._arguments.setdefault(piece.index, []).append(piece.arguments)

    def __bool__(self) -> bool:
        return bool(self._arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(self._ids.get(index, ""), self._names.get(index, ""), "".join(self._arguments[index]))
            for index in sorted(self._arguments)
        )


def check_tools(tools: Iterable[generation_pb2.Tool], tool_choice: str) -> tuple[tuple[Tool, ...], str]:
    """The request's tools and tool choice, checked; raises :class:`InvalidRequest`."""
    checked: list[Tool] = []
    names: set[str] = set()
    for index, tool in enumerate(tools):
        field = f"tools[{index}]"
        if not TOOL_NAME.match(tool.name):
            raise InvalidRequest(f"{field}.name", "must be 1 to 64 letters, digits, '_' or '-'")
        if tool.name in names:
            raise InvalidRequest(f"{field}.name", f"{tool.name!r} is already the name of another tool")
        names.add(tool.name)
        if tool.parameters:
            schema = json_object(f"{field}.parameters", tool.parameters, "a JSON Schema object")
            if schema.get("type", "object") != "object":
                raise InvalidRequest(f"{field}.parameters", 'must be a schema of "type": "object"')
        checked.append(Tool(tool.name, tool.description, tool.parameters))
    if len(checked) > MAX_TOOLS:
        raise InvalidRequest("tools", f"at most {MAX_TOOLS} tools")
    if tool_choice:
        if not checked:
            raise InvalidRequest("tool_choice", "needs tools")
        if tool_choice not in TOOL_CHOICES and tool_choice not in names:
            raise InvalidRequest("tool_choice", "must be 'auto', 'none' or the name of one of the tools")
    return tuple(checked), tool_choice


def check_tool_calls(field: str, calls: Iterable[generation_pb2.ToolCall]) -> tuple[ToolCall, ...]:
    """An assistant message's tool calls, as a previous response returned them."""
    checked: list[ToolCall] = []
    for index, call in enumerate(calls):
        where = f"{field}.tool_calls[{index}]"
        if not call.id:
            raise InvalidRequest(f"{where}.id", "must not be empty")
        if not TOOL_NAME.match(call.name):
            raise InvalidRequest(f"{where}.name", "must be 1 to 64 letters, digits, '_' or '-'")
        json_object(f"{where}.arguments", call.arguments or "{}", "a JSON object")
        checked.append(ToolCall(call.id, call.name, call.arguments or "{}"))
    return tuple(checked)


def json_object(field: str, text: str, what: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(field, f"must be {what} in JSON text: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(field, f"must be {what}, not {type(value).__name__}")
    return value
