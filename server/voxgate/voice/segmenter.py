"""Where Speak cuts a model's streamed answer into pieces for the speech upstream.

The upstream buffers text and speaks only complete sentences (docs/protocol.md#result-generated),
so a piece needs no more than that: cutting at a clause boundary (a comma, a colon) costs
nothing in first-audio time and keeps a word whole within its continue-task, while forwarding
every token sends a frame per token. ``docs/api.md#speak`` has the measurement of the three
policies (every delta, clause, sentence) behind this choice.
"""

from __future__ import annotations

import re
from typing import Literal

Policy = Literal["delta", "clause", "sentence"]

_SENTENCE_END = re.compile(r"(?:[。！？!?；;\n]|\.(?=\s))\s*")
"""After a terminator and its whitespace (``3.14`` stays whole), as the upstream splits."""
_CLAUSE_END = re.compile(r"(?:[。！？!?；;\n，、：,:]|\.(?=\s))\s*")
MAX_PENDING_CHARS = 200
"""A clause longer than this is cut at its last space, so a run-on answer is not held back."""


class Segmenter:
    """Feed deltas; get the pieces to send upstream now; :meth:`flush` at the end of the answer."""

    def __init__(self, policy: Policy = "clause") -> None:
        self.policy = policy
        self._pending = ""
        self._boundary = _SENTENCE_END if policy == "sentence" else _CLAUSE_END

    def feed(self, delta: str) -> list[str]:
        if self.policy == "delta":
            return [delta] if delta else []
        self._pending += delta
        end = 0
        for match in self._boundary.finditer(self._pending):
            # "." counts only before whitespace, so "3." waiting for its "14" is not cut;
            # "!" or "," at the very end is: waiting for the next token costs a token's time.
            end = match.end()
        if end == 0 and len(self._pending) > MAX_PENDING_CHARS:
            end = self._pending.rfind(" ") + 1
        if end <= 0:
            return []
        piece, self._pending = self._pending[:end], self._pending[end:]
        return [piece]

    def flush(self) -> str:
        """What is left (the answer's last words)."""
        piece, self._pending = self._pending, ""
        return piece
