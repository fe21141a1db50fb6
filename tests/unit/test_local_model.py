"""local-echo, the embedded upstream's generation model, and its generation fault knobs."""

from __future__ import annotations

import json

import pytest

from voxgate_dev import Faults, GenerationFaults
from voxgate_dev.faults import FaultSwitch
from voxgate_dev.generation_request import parse_generation
from voxgate_dev.local_model import answer, tokenize
from voxgate_dev.speech_request import RequestError

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


def test_thinking_reasons_first_and_counts_the_reasoning_as_output() -> None:
    result = answer((("user", "Hi there"),), max_tokens=1, stop=(), thinking=True)
    assert "".join(result.reasoning) == "The user said: Hi there. I will say it back."
    assert (result.text, result.finish_reason) == ("Hello", "length")  # max_tokens cuts the answer only
    assert result.output_tokens == len(result.reasoning) + 1


def test_a_last_user_message_naming_a_tool_gets_one_call_to_it() -> None:
    chat = (("user", "Weather in Paris? Use get_weather"),)
    result = answer(chat, max_tokens=None, stop=(), tools=("lookup", "get_weather"))
    assert result.tool_call is not None and result.tool_call.name == "get_weather"
    assert (result.tokens, result.finish_reason) == ((), "tool_calls")
    assert (
        result.tool_call == answer(chat, max_tokens=None, stop=(), tools=("get_weather",)).tool_call
    )  # same id
    assert (
        answer((("user", "get weather"),), max_tokens=None, stop=(), tools=("get_weather",)).tool_call is None
    )


def test_a_tool_result_is_echoed() -> None:
    chat = (("user", "Use get_weather"), ("assistant", ""), ("tool", "Sunny,  21 C"))
    result = answer(chat, max_tokens=None, stop=(), tools=("get_weather",))
    assert (result.text, result.tool_call) == ("The tool said: Sunny, 21 C", None)


def test_images_are_listed_after_the_echo() -> None:
    result = answer((("user", "What?"),), max_tokens=None, stop=(), images=("2x3 PNG", "https://x/a.png"))
    assert result.text == "Hello! You said: What? I see 2 images: 2x3 PNG; https://x/a.png"


@pytest.mark.parametrize(("model", "multimodal"), [("local-echo-vl", False), ("local-echo", True)])
def test_each_endpoint_has_its_own_models(model: str, multimodal: bool) -> None:
    body = json.dumps({"model": model, "input": {"messages": [{"role": "user", "content": "Hi"}]}}).encode()
    with pytest.raises(RequestError, match="Model not exist"):
        parse_generation(body, multimodal=multimodal)
