"""InFlight: a call cut by a stop at once ends UNAVAILABLE with a reason; a client cancel stays a cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from voxgate.rpc.shutdown import SHUTTING_DOWN_NOW, InFlight


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted  # as grpc.aio's abort raises


async def start(in_flight: InFlight, context: Context) -> asyncio.Task[Any]:
    running = asyncio.Event()

    async def handler(request: object, context: object) -> None:
        running.set()
        await asyncio.Event().wait()  # a stream that would run on

    task = asyncio.create_task(in_flight.run(handler, None, context))
    await running.wait()
    return task


async def test_a_cut_call_is_answered_unavailable() -> None:
    in_flight, context = InFlight(), Context()
    task = await start(in_flight, context)
    assert len(in_flight) == 1
    await in_flight.cancel_all(timeout_s=5)
    assert task.done()
    with pytest.raises(Aborted):
        task.result()
    assert context.aborted == (grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN_NOW)
    assert len(in_flight) == 0


async def test_a_cancel_from_elsewhere_is_not_answered() -> None:
    in_flight, context = InFlight(), Context()
    task = await start(in_flight, context)
    task.cancel()  # the caller went away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert context.aborted is None
    assert len(in_flight) == 0
