"""The embedded upstream's generation models. Deterministic, tiny, and honest about being
echoes: ``local-echo`` answers ``Hello! You said: <the last user message>``; ``local-echo-vl``
(multimodal) adds what images it was given (``I see 1 image: 640x480 PNG`` for inline bytes it
can decode, the URL for a URL).

It honours what callers test against a real model: ``max_tokens`` (finish_reason ``length``),
``stop`` sequences (the answer ends before the first one, finish_reason ``stop``) and usage
counts. With ``enable_thinking`` it reasons first, a short ``reasoning_content``. With
``tools``, a last user message that names one of them gets one call to that tool (arguments
``{}``, finish_reason ``tool_calls``); a last ``tool`` message gets its result echoed. A token
is a word or a punctuation mark with the whitespace before it, so the tokens of an answer
joined together are the answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

LOCAL_MODEL = "local-echo"
LOCAL_VL_MODEL = "local-echo-vl"
MODELS = (LOCAL_MODEL,)
"""Model names of the text endpoint; any other is ``InvalidParameter: Model not exist.``"""
MULTIMODAL_MODELS = (LOCAL_VL_MODEL,)
"""Model names of the multimodal endpoint."""
TOOL_ARGUMENTS = ("{", "}")
"""The arguments of a tool call, ``{}``, in the two pieces a stream carries them in."""
_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Answer:
    tokens: tuple[str, ...]
    finish_reason: str
    input_tokens: int
    reasoning: tuple[str, ...] = ()
    """Reasoning tokens, streamed before the answer (thinking mode)."""
    tool_call: ToolCall | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.tokens) + (len(TOOL_ARGUMENTS) if self.tool_call else 0)


def answer(
    messages: Sequence[tuple[str, str]],
    *,
    max_tokens: int | None,
    stop: Sequence[str],
    thinking: bool = False,
    tools: Sequence[str] = (),
    images: Sequence[str] = (),
) -> Answer:
    """The answer to ``messages`` (role, content), oldest first; ``images`` describe the images
    of the last user message, ``tools`` are the names of the functions offered."""
    said = " ".join(next((content for role, content in reversed(messages) if role == "user"), "").split())
    input_tokens = sum(len(tokenize(content)) for _, content in messages)
    last_role, last_content = messages[-1] if messages else ("user", "")
    tool = _named_tool(said, tools) if last_role == "user" else None
    reasoning: tuple[str, ...] = ()
    if thinking:
        plan = f"I will call {tool}." if tool else "I will say it back."
        reasoning = tuple(tokenize(f"The user said: {said}. {plan}"))
    if tool is not None:
        digest = hashlib.sha256("\n".join(content for _, content in messages).encode()).hexdigest()
        return Answer((), "tool_calls", input_tokens, reasoning, ToolCall(f"call_{digest[:24]}", tool))
    if last_role == "tool":
        text = f"The tool said: {' '.join(last_content.split())}"
    else:
        text = f"Hello! You said: {said}"
        if images:
            text += f" I see {len(images)} image{'s' if len(images) > 1 else ''}: {'; '.join(images)}"
    cuts = [text.find(sequence) for sequence in stop if sequence and sequence in text]
    if cuts:
        text = text[: min(cuts)]
    tokens = tokenize(text)
    finish_reason = "stop"
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens, finish_reason = tokens[:max_tokens], "length"
    return Answer(tuple(tokens), finish_reason, input_tokens, reasoning)


def _named_tool(said: str, tools: Sequence[str]) -> str | None:
    words = set(re.findall(r"[\w-]+", said))
    return next((name for name in tools if name in words), None)
