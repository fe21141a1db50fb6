"""Sentence segmentation and language choice for the local upstream.

The vendor splits buffered text into sentences, synthesizes complete ones at once, buffers
the incomplete tail and forces it out on finish-task (docs/protocol.md#result-generated). Its exact
rules are unknown; we split after ``。！？!?；;`` and newlines, and after ``.`` followed by
whitespace (so ``3.14`` and ``e.g.x`` stay whole) [GUESS].
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A sentence ends after a terminator plus the whitespace that follows it, so the
# original_text of "Hello there. This…" is "Hello there. " as in the recorded run.
_SENTENCE_END = re.compile(r"(?:[。！？!?；;\n]|\.(?=\s))\s*")
_SSML_TAG = re.compile(r"<[^>]*>")


class SentenceBuffer:
    """Collects streamed text; hands out complete sentences as soon as they exist."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the sentences it completed, in order."""
        self._pending += text
        sentences: list[str] = []
        start = 0
        for match in _SENTENCE_END.finditer(self._pending):
            end = match.end()
            sentences.append(self._pending[start:end])
            start = end
        self._pending = self._pending[start:]
        return [s for s in sentences if s.strip()]

    def flush(self) -> str | None:
        """The buffered incomplete sentence, if it holds more than whitespace; empties the buffer."""
        pending, self._pending = self._pending, ""
        return pending if pending.strip() else None


def is_ssml(text: str) -> bool:
    """Whether ``text`` is an SSML document (what ``enable_ssml`` makes the vendor parse)."""
    return text.lstrip().startswith("<speak")


def strip_ssml(text: str) -> str:
    """Text without tags: SSML tags count 0 characters (docs/protocol.md#text-limits)."""
    return _SSML_TAG.sub("", text)


_HINT_VOICES = {"zh": "cmn", "en": "en-us", "ja": "ja", "ko": "ko"}


def espeak_language(text: str, language_hints: Sequence[str]) -> str:
    """espeak voice for the text: the first language hint wins (only it is used: docs/protocol.md#run-task),
    else the script: Hangul → ko, kana → ja, Han → cmn, anything else → en-us."""
    if language_hints:
        hinted = _HINT_VOICES.get(str(language_hints[0]).lower().split("-")[0])
        if hinted:
            return hinted
    has_han = False
    for ch in text:
        code = ord(ch)
        if 0xAC00 <= code <= 0xD7AF:
            return "ko"
        if 0x3040 <= code <= 0x30FF:
            return "ja"
        if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            has_han = True
    return "cmn" if has_han else "en-us"
