"""Speak's boundary policies: where a streamed answer is cut into pieces for the speech upstream."""

from __future__ import annotations

from voxgate.voice.segmenter import MAX_PENDING_CHARS, Segmenter

TOKENS = [
    "Hello",
    "!",
    " You",
    " said",
    ":",
    " warm",
    " pools",
    ",",
    " pi",
    " is",
    " 3",
    ".",
    "14",
    ".",
    " Bye",
]


def cut(segmenter: Segmenter, tokens: list[str]) -> list[str]:
    pieces = [piece for token in tokens for piece in segmenter.feed(token)]
    return [*pieces, segmenter.flush()]


def test_clause_policy_cuts_after_clause_and_sentence_marks_only() -> None:
    assert cut(Segmenter("clause"), TOKENS) == [
        "Hello!",
        " You said:",
        " warm pools,",
        " pi is 3.14. ",  # a "." counts once whitespace follows it, which stays with it
        "Bye",
    ]


def test_sentence_policy_keeps_clauses_together() -> None:
    assert cut(Segmenter("sentence"), TOKENS) == ["Hello!", " You said: warm pools, pi is 3.14. ", "Bye"]


def test_delta_policy_forwards_every_token() -> None:
    assert cut(Segmenter("delta"), TOKENS) == [*TOKENS, ""]


def test_the_pieces_joined_are_the_answer() -> None:
    for policy in ("delta", "clause", "sentence"):
        assert "".join(cut(Segmenter(policy), TOKENS)) == "".join(TOKENS)


def test_a_run_on_clause_is_cut_at_a_space() -> None:
    segmenter = Segmenter("clause")
    words = [" word"] * (MAX_PENDING_CHARS // 5 + 2)
    pieces = [piece for word in words for piece in segmenter.feed(word)]
    assert pieces and all(piece.endswith(" ") or piece.endswith("word") for piece in pieces)
    assert "".join(pieces) + segmenter.flush() == "".join(words)
