"""The overload parts without a network: the task-start bucket, the write guard, the salvage's
task-id check, echoed values, refusal logging."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, cast

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from voxgate.rpc.admission import Overload
from voxgate.rpc.errors import echo
from voxgate.rpc.stall import WriteGuard, WriteStalled
from voxgate.speech.connection import Endpoint, Synthesizer
from voxgate.speech.protocol import ProtocolError, SynthesisParams, SynthesisTask, TaskState
from voxgate.speech.ratelimit import RateLimited, TaskStartLimiter

TASK_ID = "a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- task-start bucket ----------------------------------------------------------------------------


async def test_the_bucket_lets_a_burst_through_then_refuses_what_would_wait_too_long() -> None:
    clock, overload = Clock(), Overload()
    limiter = TaskStartLimiter(rate_per_s=2.0, burst=3, overload=overload, clock=clock)
    for _ in range(3):
        assert await limiter.take(max_wait_s=0.0) == 0.0
    with pytest.raises(RateLimited, match=r"next start is 0\.50s away"):
        await limiter.take(max_wait_s=0.1)
    clock.now += 0.5  # one token back
    assert await limiter.take(max_wait_s=0.0) == 0.0
    assert overload.rate_limited_waits == 0


async def test_waiting_callers_hold_their_places_one_interval_apart() -> None:
    clock, overload = Clock(), Overload()
    limiter = TaskStartLimiter(rate_per_s=4.0, burst=1, overload=overload, clock=clock)
    assert await limiter.take(None) == 0.0
    # Two more at the same instant: the second waits 1/rate, the third 2/rate (real sleeps, short).
    waits = await asyncio.gather(limiter.take(None), limiter.take(None))
    assert waits[0] == pytest.approx(0.25) and waits[1] == pytest.approx(0.5)
    assert overload.rate_limited_waits == 2


async def test_a_rate_of_zero_never_waits() -> None:
    limiter = TaskStartLimiter(rate_per_s=0.0, burst=1, overload=Overload())
    assert [await limiter.take(0.0) for _ in range(100)] == [0.0] * 100


# --- write guard ----------------------------------------------------------------------------------


async def test_a_write_past_the_limit_frees_at_once_and_raises_once_it_completes() -> None:
    freed = asyncio.Event()
    release_write = asyncio.Event()
    with WriteGuard(0.05) as guard:
        guard.on_stall = freed.set
        write = asyncio.ensure_future(guard.write(release_write.wait()))
        await freed.wait()  # the stall limit passed while the write still waits
        assert guard.expired and not write.done()
        release_write.set()
        with pytest.raises(WriteStalled, match=r"read nothing for 0\.05s"):
            await write


async def test_writes_that_complete_in_time_never_trip_the_guard() -> None:
    with WriteGuard(10.0) as guard:
        for _ in range(1000):
            assert await guard.write(asyncio.sleep(0, result=1)) == 1
        assert not guard.expired


# --- salvage: the task-id check -------------------------------------------------------------------


class FakeSocket:
    """Just what Synthesizer.salvage touches of a websockets connection."""

    def __init__(self, frames: list[str | bytes]) -> None:
        self.frames = deque(frames)
        self.state = State.OPEN

    async def recv(self) -> str | bytes:
        return self.frames.popleft()


def event(name: str, task_id: str = TASK_ID) -> str:
    return json.dumps({"header": {"task_id": task_id, "event": name, "attributes": {}}, "payload": {}})


def abandoned_task() -> SynthesisTask:
    """A task whose caller left after finish-task, as the servicer hands it to the salvager."""
    task = SynthesisTask(SynthesisParams(model="cosyvoice-v3-flash", voice="longanyang"), task_id=TASK_ID)
    task.run_task()
    task.receive_text(event("task-started"))
    task.finish_task()
    return task


def synthesizer(frames: list[str | bytes]) -> Synthesizer:
    conn = Synthesizer(cast(ClientConnection, FakeSocket(frames)), Endpoint(url="ws://x", api_key="k"))
    conn._broken = True  # as run() leaves it when its caller stops early
    return conn


async def test_salvage_reads_to_task_finished_and_leaves_the_connection_clean() -> None:
    conn = synthesizer([b"\x00" * 100, event("result-generated"), b"\x00" * 50, event("task-finished")])
    task = abandoned_task()
    assert await conn.salvage(task) == 150
    assert task.state is TaskState.FINISHED and conn.is_open


async def test_salvage_fails_on_a_frame_of_another_task_and_the_connection_stays_broken() -> None:
    conn = synthesizer([b"\x00" * 100, event("result-generated", task_id="b" * 32), event("task-finished")])
    with pytest.raises(ProtocolError, match="expected " + TASK_ID):
        await conn.salvage(abandoned_task())
    assert not conn.is_open


async def test_a_task_that_never_reached_finish_task_is_not_salvaged() -> None:
    task = SynthesisTask(SynthesisParams(model="m", voice="v"), task_id=TASK_ID)
    task.run_task()
    with pytest.raises(ProtocolError, match="state starting"):
        await synthesizer([]).salvage(task)


# --- messages and logs ----------------------------------------------------------------------------


def test_echo_cuts_long_values() -> None:
    assert echo("short") == "'short'"
    long = echo("v" * 10_000)
    assert len(long) < 100 and long.endswith("... (10000 characters)")


def test_refusals_are_counted_each_and_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    overload = Overload()
    seen: list[Any] = []
    overload.listeners.append(lambda kind, reason: seen.append((kind, reason)))
    with caplog.at_level(logging.WARNING, logger="voxgate.rpc.admission"):
        for _ in range(500):
            overload.refuse("max_concurrent_rpcs", "at the limit")
    assert overload.refused == {"max_concurrent_rpcs": 500}
    assert len(seen) == 500
    assert len(caplog.records) == 1
