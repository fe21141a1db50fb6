"""The local upstream's rules without sockets: segmentation, run-task validation, fault draws."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from voxgate.settings import ConfigError
from voxgate_dev import Faults, GenerationFaults, UpstreamOptions, add_arguments, options_from_args
from voxgate_dev.faults import NO_FAULTS, FaultSwitch
from voxgate_dev.speech_request import RequestError, parse_run_task
from voxgate_dev.text import SentenceBuffer, espeak_language

# --- segmentation --------------------------------------------------------------------------------


def test_sentences_end_at_terminators_and_keep_their_trailing_space() -> None:
    buffer = SentenceBuffer()
    assert buffer.feed("Hello there. This is") == ["Hello there. "]
    assert buffer.feed(" a test! 你好。再见") == ["This is a test! ", "你好。"]
    assert buffer.flush() == "再见"
    assert buffer.flush() is None


def test_a_period_without_space_does_not_end_a_sentence() -> None:
    buffer = SentenceBuffer()
    assert buffer.feed("Pi is 3.14 and e.g.x stays") == []
    assert buffer.feed(" whole.") == []  # might still continue: "whole.5"
    assert buffer.feed("\nNext") == ["Pi is 3.14 and e.g.x stays whole.\n"]


def test_whitespace_only_pieces_are_no_sentences() -> None:
    buffer = SentenceBuffer()
    assert buffer.feed("\n\n  \n") == []
    assert buffer.flush() is None


def test_language_from_hint_or_script() -> None:
    assert espeak_language("Hello", ["zh"]) == "cmn"
    assert espeak_language("你好", []) == "cmn"
    assert espeak_language("こんにちは", []) == "ja"
    assert espeak_language("안녕하세요", []) == "ko"
    assert espeak_language("Hello", []) == "en-us"
    assert espeak_language("你好", ["en"]) == "en-us"


# --- run-task validation -----------------------------------------------------------------


def run_task(**parameters: Any) -> dict[str, Any]:
    return {"model": "cosyvoice-v3-flash", "input": {}, "parameters": {"voice": "longanyang", **parameters}}


def test_defaults_are_mp3_22050() -> None:
    spec = parse_run_task(run_task())
    assert (spec.audio_format, spec.sample_rate) == ("mp3", 22050)
    spec = parse_run_task(run_task(format="Default", sample_rate=0))
    assert (spec.audio_format, spec.sample_rate) == ("mp3", 22050)


def test_opus_is_accepted_at_its_own_rates() -> None:
    spec = parse_run_task(run_task(format="opus", sample_rate=48000, bit_rate=64))
    assert (spec.audio_format, spec.sample_rate) == ("opus", 48000)


def test_sdk_parameters_are_read() -> None:
    spec = parse_run_task(
        run_task(format="wav", sample_rate=16000, volume=80, rate=1.2, pitch=0.9, language_hints=["en"])
    )
    assert (spec.audio_format, spec.sample_rate, spec.volume, spec.rate, spec.pitch) == (
        "wav",
        16000,
        80,
        1.2,
        0.9,
    )
    assert spec.language_hints == ("en",)


def test_female_voices_get_a_female_espeak_variant() -> None:
    assert parse_run_task(run_task(voice="longanhuan")).espeak_voice("Hi").name == "en-us+f3"
    assert parse_run_task(run_task(voice="longanyang")).espeak_voice("你好").name == "cmn"
    assert parse_run_task(run_task(voice="loop-anything")).voice == "loop-anything"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"model": "cosyvoice-v3-flash", "parameters": {"voice": "longanyang"}}, "payload.input"),
        ({"input": {}, "parameters": {"voice": "longanyang"}}, "payload.model"),
        ({"model": "qwen-plus", "input": {}, "parameters": {"voice": "longanyang"}}, "Model not exist."),
        (run_task(voice=""), "Request voice is invalid!"),
        (run_task(voice="someone"), "[tts:]Engine return error code: 418"),
        (run_task(format="opus"), "sample_rate 22050 is invalid, expected one of 8000, 16000, 24000, 48000"),
        (run_task(format="flac"), "format 'flac'"),
        (run_task(sample_rate=11025), "sample_rate 11025"),
        (run_task(volume=101), "volume"),
        (run_task(rate=3.0), "rate"),
        (run_task(pitch="high"), "pitch"),
    ],
)
def test_invalid_run_tasks_are_rejected(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_run_task(payload)
    assert caught.value.code == "InvalidParameter"
    assert message in caught.value.message


# --- faults ----------------------------------------------------------------------------------


def test_times_counts_connections_and_tasks_separately() -> None:
    faults = Faults(connect_delay_ms=5, throttle=True, times=1)
    switch = FaultSwitch(faults, seed=0)
    assert switch.for_connection() == faults
    assert switch.for_task() == faults
    assert switch.for_connection() is NO_FAULTS
    assert switch.for_task() is NO_FAULTS
    switch.set(faults)  # a new setting counts again
    assert switch.for_task() == faults


def test_only_configured_scopes_draw() -> None:
    switch = FaultSwitch(Faults(throttle=True, times=1), seed=0)
    assert switch.for_connection() is NO_FAULTS  # no connection fault set: nothing consumed
    assert switch.for_task().throttle


def test_probability_is_seeded() -> None:
    def draws(seed: int) -> list[bool]:
        switch = FaultSwitch(Faults(throttle=True, probability=0.5), seed=seed)
        return [switch.for_task().throttle for _ in range(200)]

    assert draws(7) == draws(7)
    assert 60 < sum(draws(7)) < 140


def test_faults_from_json_names_bad_fields() -> None:
    assert Faults.from_json({"drop_after_bytes": 0, "fail_code": "X"}) == Faults(
        drop_after_bytes=0, fail_code="X"
    )
    with pytest.raises(ValueError, match="unknown fault field"):
        Faults.from_json({"explode": True})
    with pytest.raises(ValueError, match="throttle has the wrong type"):
        Faults.from_json({"throttle": "yes"})
    with pytest.raises(ValueError, match="probability"):
        Faults.from_json({"probability": 1.5})
    with pytest.raises(ValueError, match="reject_handshake_status"):
        Faults(reject_handshake_status=200)


# --- command line ----------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flag_defaults_are_the_option_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    assert options_from_args(parse([])) == UpstreamOptions()


def test_every_fault_has_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    options = options_from_args(
        parse(
            [
                "--port=1234",
                "--rtf=0.5",
                "--token-interval-ms=7",
                "--chunk-ms=40",
                "--idle-timeout-s=5",
                "--text-gap-timeout-s=2",
                "--run-task-while-active=preempt",
                "--seed=3",
                "--connect-delay-ms=1",
                "--task-started-delay-ms=2",
                "--first-packet-delay-ms=3",
                "--drop-after-bytes=4",
                "--fail-after-bytes=5",
                "--fail-code=Boom",
                "--fail-message=bang",
                "--throttle",
                "--reject-handshake-status=503",
                "--fault-probability=0.25",
                "--fault-times=6",
                "--generation-first-byte-delay-ms=8",
                "--generation-error-status=429",
                "--generation-error-after-tokens=9",
                "--generation-drop-after-tokens=10",
                "--generation-error-code=Oops",
                "--generation-error-message=oh",
            ]
        )
    )
    assert options == UpstreamOptions(
        port=1234,
        api_key="sk-env",
        rtf=0.5,
        token_interval_ms=7,
        chunk_ms=40,
        idle_timeout_s=5,
        text_gap_timeout_s=2,
        run_task_while_active="preempt",
        seed=3,
        faults=Faults(
            connect_delay_ms=1,
            task_started_delay_ms=2,
            first_packet_delay_ms=3,
            drop_after_bytes=4,
            fail_after_bytes=5,
            fail_code="Boom",
            fail_message="bang",
            throttle=True,
            reject_handshake_status=503,
            probability=0.25,
            times=6,
            generation=GenerationFaults(
                first_byte_delay_ms=8,
                error_status=429,
                error_after_tokens=9,
                drop_after_tokens=10,
                error_code="Oops",
                error_message="oh",
            ),
        ),
    )
    assert "sk-env" not in repr(options), "the key never shows in logs"


def test_key_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    assert options_from_args(parse(["--api-key=sk-flag"])).api_key == "sk-flag"


def test_bad_flags_are_named_with_the_reason() -> None:
    with pytest.raises(ConfigError) as error:
        options_from_args(parse(["--generation-error-status=200"]))
    assert (error.value.source, error.value.reason) == (
        "--generation-error-status",
        "must be within [400, 599] (got '200')",
    )
    with pytest.raises(ConfigError, match=r"^--fault-probability: must be a number"):
        options_from_args(parse(["--fault-probability=often"]))


def test_generation_fault_errors_from_json_name_the_nested_field() -> None:
    with pytest.raises(ValueError, match=r"^generation\.error_status must be within \[400, 599\]"):
        Faults.from_json({"generation": {"error_status": 200}})
