"""local-echo, the embedded upstream's generation model, and its generation fault knobs."""

from __future__ import annotations

import pytest

from voxgate_dev import Faults, GenerationFaults
from voxgate_dev.faults import FaultSwitch
from voxgate_dev.local_model import answer, tokenize

CHAT = (("system", "Be brief."), ("user", "Say   hello"))


def test_answer_echoes_the_last_user_message_and_counts_tokens() -> None:
    result = answer(CHAT, max_tokens=None, stop=())
    assert result.text == "Hello! You said: Say hello"
    assert result.tokens == ("Hello", "!", " You", " said", ":", " Say", " hello")
    assert (result.finish_reason, result.input_tokens) == ("stop", 5)  # Be brief . Say hello


def test_max_tokens_cuts_with_finish_reason_length() -> None:
    result = answer(CHAT, max_tokens=2, stop=())
    assert (result.text, result.finish_reason) == ("Hello!", "length")


def test_the_answer_ends_before_the_earliest_stop_sequence() -> None:
    result = answer(CHAT, max_tokens=None, stop=("said", "!"))
    assert (result.text, result.finish_reason) == ("Hello", "stop")


def test_tokens_join_back_to_the_text() -> None:
    text = "  Spaces,  and\tpunctuation!? 你好"
    assert "".join(tokenize(text)) == text.rstrip()


def test_generation_faults_from_json_and_their_own_count() -> None:
    faults = Faults.from_json({"times": 1, "generation": {"error_status": 429}})
    assert faults == Faults(times=1, generation=GenerationFaults(error_status=429))
    switch = FaultSwitch(faults, seed=0)
    assert switch.for_generation().error_status == 429
    assert switch.for_generation() == GenerationFaults()  # times=1: only the next request
    assert switch.for_task() == Faults()  # no task faults set: TTS is untouched


@pytest.mark.parametrize(
    "data",
    [{"generation": {"explode": 1}}, {"generation": {"error_status": 200}}, {"generation": 3}],
)
def test_bad_generation_faults_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="generation"):
        Faults.from_json(data)
