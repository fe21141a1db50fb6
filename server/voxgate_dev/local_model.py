"""``local-echo``: the embedded upstream's generation model. Deterministic, tiny, and honest
about being an echo: it answers ``Hello! You said: <the last user message>``.

It honours what callers test against a real model: ``max_tokens`` (finish_reason ``length``),
``stop`` sequences (the answer ends before the first one, finish_reason ``stop``) and usage
counts. A token is a word or a punctuation mark with the whitespace before it, so the
tokens of an answer joined together are the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LOCAL_MODEL = "local-echo"
MODELS = (LOCAL_MODEL,)
"""Model names the embedded upstream answers; any other is ``InvalidParameter: Model not exist.``"""
_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass(frozen=True, slots=True)
class Answer:
    tokens: tuple[str, ...]
    finish_reason: str
    input_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def answer(messages: Sequence[tuple[str, str]], *, max_tokens: int | None, stop: Sequence[str]) -> Answer:
    """The answer to ``messages`` (role, content), oldest first."""
    said = next((content for role, content in reversed(messages) if role == "user"), "")
    text = f"Hello! You said: {' '.join(said.split())}"
    cuts = [text.find(sequence) for sequence in stop if sequence and sequence in text]
    if cuts:
        text = text[: min(cuts)]
    tokens = tokenize(text)
    finish_reason = "stop"
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens, finish_reason = tokens[:max_tokens], "length"
    input_tokens = sum(len(tokenize(content)) for _, content in messages)
    return Answer(tuple(tokens), finish_reason, input_tokens)
