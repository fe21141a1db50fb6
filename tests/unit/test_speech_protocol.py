"""The CosyVoice task state machine: wire format and every legal and illegal step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from voxgate.speech.protocol import (
    AudioReceived,
    ProtocolError,
    SentenceProgress,
    SynthesisParams,
    SynthesisTask,
    TaskFailure,
    TaskFinished,
    TaskStarted,
    TaskState,
    weighted_length,
)

# What dashscope 2.0.2 really sent to a recording server (docs/protocol.md explains it).
GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "sdk-2.0.2-timeline.txt"
TASK_ID = "7f3046d8b6e0488f9d5b331c936d0032"


def golden_client_frames(scenario: str) -> list[str]:
    """The frames the vendor SDK really sent in one recorded scenario."""
    frames, inside = [], False
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("######## "):
            inside = line.split()[1] == scenario
        elif inside and " => {" in line:
            frames.append(line.split(" => ", 1)[1])
    return frames


def event(name: str, task_id: str = TASK_ID, **extra: Any) -> str:
    header: dict[str, Any] = {"task_id": task_id, "event": name, "attributes": extra.pop("attributes", {})}
    header.update(extra.pop("header", {}))
    return json.dumps({"header": header, "payload": extra.pop("payload", {})})


def new_task(**params: Any) -> SynthesisTask:
    defaults: dict[str, Any] = {"model": "cosyvoice-v3-flash", "voice": "longanyang", "format": "pcm"}
    return SynthesisTask(SynthesisParams(**{**defaults, **params}), task_id=TASK_ID)


def started_task() -> SynthesisTask:
    task = new_task()
    task.run_task()
    task.receive_text(event("task-started"))
    return task


# --- wire format against the recorded SDK frames -----------------------------------------------


def test_frames_match_the_vendor_sdk_byte_for_byte() -> None:
    run, cont, finish = golden_client_frames("tts_call")
    task = new_task(enable_ssml=True)  # the SDK's call() always sets it
    assert task.run_task() == run
    task.receive_text(event("task-started"))
    assert task.continue_task("Hello there. This is a test of the recording server.") == cont
    assert task.finish_task() == finish


def test_optional_parameters_keep_the_sdk_key_order() -> None:
    recorded = json.loads(golden_client_frames("tts_call_wav_params")[0])
    task = SynthesisTask(
        SynthesisParams(
            model="cosyvoice-v3-flash",
            voice="longanyang",
            format="wav",
            sample_rate=16000,
            volume=80,
            rate=1.2,
            pitch=0.9,
            seed=42,
            enable_ssml=True,
            instruction="Speak calmly.",
            language_hints=("en",),
            word_timestamp_enabled=True,
            enable_markdown_filter=True,
        ),
        task_id=recorded["header"]["task_id"],
    )
    ours = json.loads(task.run_task())
    recorded["payload"]["parameters"].pop("hot_fix")  # not exposed by voxgate
    assert list(ours["payload"]["parameters"].items()) == list(recorded["payload"]["parameters"].items())


def test_task_ids_are_uuid4_hex() -> None:
    task = SynthesisTask(SynthesisParams(model="m", voice="v"))
    assert len(task.task_id) == 32 and int(task.task_id, 16) >= 0


# --- legal transitions -----------------------------------------------------------------------


def test_full_task_walks_every_state() -> None:
    task = new_task()
    states = [task.state]
    task.run_task()
    states.append(task.state)
    assert task.receive_text(event("task-started")) == TaskStarted(TASK_ID)
    states.append(task.state)
    task.continue_task("Hello.")
    progress = task.receive_text(
        event("result-generated", payload={"output": {"type": "sentence-begin", "sentence": {"index": 0}}})
    )
    assert isinstance(progress, SentenceProgress)
    assert (progress.kind, progress.index) == ("sentence-begin", 0)
    assert task.receive_audio(b"\x00\x01") == AudioReceived(b"\x00\x01")
    task.finish_task()
    states.append(task.state)
    task.receive_audio(b"\x02")
    sentence_end = {"output": {"type": "sentence-end"}, "usage": {"characters": 6}}
    task.receive_text(event("result-generated", payload=sentence_end))
    finished = task.receive_text(
        event("task-finished", attributes={"request_uuid": "r-1"}, payload={"usage": {"characters": 6}})
    )
    states.append(task.state)
    assert finished == TaskFinished(TASK_ID, "r-1", 6)
    assert states == [
        TaskState.IDLE,
        TaskState.STARTING,
        TaskState.STARTED,
        TaskState.FINISHING,
        TaskState.FINISHED,
    ]
    assert task.state.ended
    assert task.audio_bytes == 3 and task.request_id == "r-1"


def test_usage_takes_the_last_value_seen() -> None:
    task = started_task()
    task.receive_text(event("result-generated", payload={"output": {}, "usage": {"characters": 13}}))
    task.finish_task()
    finished = task.receive_text(event("task-finished", payload={"usage": {"characters": 44}}))
    assert isinstance(finished, TaskFinished) and finished.characters == 44


@pytest.mark.parametrize("reach", ["starting", "started", "finishing"])
def test_task_failed_is_legal_in_every_active_state(reach: str) -> None:
    task = new_task()
    task.run_task()
    if reach != "starting":
        task.receive_text(event("task-started"))
    if reach == "finishing":
        task.finish_task()
    failed = event("task-failed", header={"error_code": "InvalidParameter", "error_message": "bad voice"})
    with pytest.raises(TaskFailure) as info:
        task.receive_text(failed)
    assert (info.value.code, info.value.message, info.value.task_id) == (
        "InvalidParameter",
        "bad voice",
        TASK_ID,
    )
    assert task.state is TaskState.FAILED


# --- illegal transitions --------------------------------------------------------------------------


def test_sending_out_of_order_is_rejected() -> None:
    task = new_task()
    with pytest.raises(ProtocolError):
        task.continue_task("too early")
    with pytest.raises(ProtocolError):
        task.finish_task()
    task.run_task()
    with pytest.raises(ProtocolError):
        task.run_task()
    with pytest.raises(ProtocolError):
        task.continue_task("before task-started")
    task.receive_text(event("task-started"))
    with pytest.raises(ProtocolError):
        task.continue_task("")
    task.finish_task()
    for send in (task.run_task, task.finish_task, lambda: task.continue_task("late")):
        with pytest.raises(ProtocolError):
            send()


@pytest.mark.parametrize(
    ("setup", "frame"),
    [
        ("idle", event("task-started")),
        ("starting", event("result-generated", payload={"output": {}})),
        ("starting", event("task-finished")),
        ("started", event("task-started")),
        ("started", event("task-finished")),  # before finish-task was sent
        ("finishing", event("task-started")),
        ("idle", event("task-failed")),
        ("started", event("who-knows")),
        ("started", event("task-finished", task_id="0" * 32)),  # another task's event
        ("started", "not json"),
        ("started", json.dumps({"payload": {}})),
    ],
)
def test_illegal_events_fail_the_task(setup: str, frame: str) -> None:
    task = new_task()
    if setup != "idle":
        task.run_task()
    if setup in ("started", "finishing"):
        task.receive_text(event("task-started"))
    if setup == "finishing":
        task.finish_task()
    with pytest.raises(ProtocolError):
        task.receive_text(frame)
    assert task.state is TaskState.FAILED


def test_audio_outside_a_running_task_is_rejected() -> None:
    task = new_task()
    task.run_task()
    with pytest.raises(ProtocolError):
        task.receive_audio(b"early")
    finished = started_task()
    finished.finish_task()
    finished.receive_text(event("task-finished"))
    with pytest.raises(ProtocolError):
        finished.receive_audio(b"late")


def test_no_event_is_accepted_after_the_end() -> None:
    task = started_task()
    task.finish_task()
    task.receive_text(event("task-finished"))
    for frame in (event("task-failed"), event("result-generated"), event("task-finished")):
        with pytest.raises(ProtocolError):
            task.receive_text(frame)


def test_weighted_length_counts_cjk_twice() -> None:
    assert weighted_length("hello") == 5
    # Five ideographs and one full-width comma (docs/protocol.md#text-limits).
    assert weighted_length("床前明月光，") == 11
