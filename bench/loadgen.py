"""The load generator, one process per (variant, level): ``python -m bench.loadgen VARIANT ...``.

Variants (the clients a backend could use to get speech):

* ``grpc``: voxgate's Synthesize over gRPC (``--target``), asyncio, ``--channels`` HTTP/2
  connections used in turn (so ``voxgate serve --workers N`` gets connections for every worker).
* ``direct``: the DashScope protocol spoken by the load generator itself on WebSockets it
  opened before the clock starts, one per concurrent stream: the floor.
* ``sdk``: the vendor's ``dashscope`` SDK with ``SpeechSynthesizerObjectPool``, driven by
  threads as its high-concurrency guide shows (borrow with a callback, ``call()``, return).

Protocol with the orchestrator (:mod:`bench.speech`): the process prepares (connects,
warms up), prints ``ready``, waits for a line on stdin, runs the level, and prints
``result <json>`` with every sample and its own CPU time, then exits.
Closed loop: ``--concurrency`` workers back to back until ``--requests`` are done.
Open loop (``--rate``): arrivals at a fixed rate, each timed from its scheduled start,
so a slow server cannot slow the arrivals down (no coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc
from websockets.asyncio.client import ClientConnection, connect

from bench.stats import STATUS_OK, Sample
from voxgate.speech.protocol import SynthesisParams, SynthesisTask, TaskFailure, TaskFinished, TaskStarted
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc

TEXTS = (
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "voxgate keeps upstream connections warm.",
    "First packets should arrive quickly.",
)
"""The text set every variant speaks, in turn."""
MODEL, VOICE, SAMPLE_RATE = "cosyvoice-v3-flash", "longanyang", 16000
PARAMS = SynthesisParams(model=MODEL, voice=VOICE, format="pcm", sample_rate=SAMPLE_RATE)
REQUEST_TIMEOUT_S = 60.0
CONNECT_CONCURRENCY = 100
"""Pre-opened sockets are opened this many at a time."""


class Driver(Protocol):
    async def prepare(self, concurrency: int) -> None: ...

    async def one(self, slot: int, text: str, started: float) -> Sample: ...

    async def close(self) -> None: ...


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# --- (a)/(b): voxgate over gRPC -------------------------------------------------------------


class GrpcDriver:
    def __init__(self, target: str, channels: int, min_chunk_ms: int = 0) -> None:
        self._min_chunk_ms = min_chunk_ms or None  # SynthesizeRequest.min_chunk_ms; 0: unset
        # A local subchannel pool per channel: otherwise grpc shares one TCP connection
        # between channels to the same target, and one worker of N would get everything.
        options = [("grpc.use_local_subchannel_pool", 1)]
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
        self._stubs = [speech_pb2_grpc.SpeechServiceStub(channel) for channel in self._channels]

    async def prepare(self, concurrency: int) -> None:
        for channel in self._channels:
            await asyncio.wait_for(channel.channel_ready(), 30)

    async def one(self, slot: int, text: str, started: float) -> Sample:
        request = speech_pb2.SynthesizeRequest(
            text=text,
            model=MODEL,
            voice=VOICE,
            format=speech_pb2.AUDIO_FORMAT_PCM,
            sample_rate=SAMPLE_RATE,
            min_chunk_ms=self._min_chunk_ms,
        )
        first_packet_ms, audio_bytes = -1.0, 0
        summary: speech_pb2.SynthesisSummary | None = None
        call = self._stubs[slot % len(self._stubs)].Synthesize(request, timeout=REQUEST_TIMEOUT_S)
        try:
            async for response in call:
                if response.WhichOneof("content") == "audio":
                    if first_packet_ms < 0:
                        first_packet_ms = _elapsed_ms(started)
                    audio_bytes += len(response.audio)
                else:
                    summary = response.summary
        except grpc.aio.AioRpcError as exc:
            return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, exc.code().name)
        if summary is None:
            return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, "NO_SUMMARY")
        return Sample(
            first_packet_ms,
            _elapsed_ms(started),
            audio_bytes,
            STATUS_OK,
            pool_wait_ms=summary.pool_wait_ms,
            hop_ms=summary.first_packet_delay_ms - summary.upstream_first_packet_delay_ms,
            reused=summary.connection_reused,
        )

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


# --- (d): the floor, straight to the upstream on pre-opened sockets ----------------------------


class DirectDriver:
    def __init__(self, ws_url: str, api_key: str) -> None:
        self._url = ws_url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._sockets: list[ClientConnection] = []

    async def prepare(self, concurrency: int) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def open_one() -> ClientConnection:
            async with gate:
                return await connect(
                    self._url, additional_headers=self._headers, compression=None, proxy=None, max_queue=16
                )

        self._sockets = list(await asyncio.gather(*(open_one() for _ in range(concurrency))))

    async def one(self, slot: int, text: str, started: float) -> Sample:
        ws = self._sockets[slot]
        task = SynthesisTask(PARAMS)
        first_packet_ms, audio_bytes = -1.0, 0
        try:
            await ws.send(task.run_task())
            while not isinstance(task.receive_text(str(await ws.recv())), TaskStarted):
                pass
            await ws.send(task.continue_task(text))
            await ws.send(task.finish_task())
            while True:
                frame = await ws.recv()
                if isinstance(frame, bytes):
                    if first_packet_ms < 0:
                        first_packet_ms = _elapsed_ms(started)
                    audio_bytes += len(task.receive_audio(frame).data)
                elif isinstance(task.receive_text(frame), TaskFinished):
                    return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, STATUS_OK)
        except TaskFailure as exc:
            return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, exc.code)
        except Exception as exc:
            return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, type(exc).__name__)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self._sockets), return_exceptions=True)


# --- (c): the vendor SDK's object pool, driven by threads -------------------------------------


class SdkDriver:
    """``SpeechSynthesizerObjectPool`` as the vendor's high-concurrency guide uses it.

    One deviation, on purpose: the guide returns the synthesizer from ``on_complete``,
    which races the SDK's own task cleanup (docs/protocol.md#the-vendor-sdks-pool: 15-25 % of calls fail with
    ``InvalidTask``). Here the calling thread returns it after that cleanup ran, so the
    bench measures the pool, not the race.
    """

    def __init__(self, ws_url: str, api_key: str, pool_size: int) -> None:
        import dashscope

        dashscope.api_key = api_key
        dashscope.base_websocket_api_url = ws_url
        # The SDK warns once per borrow from an exhausted pool; thousands of lines say nothing new.
        logging.getLogger("dashscope").setLevel(logging.CRITICAL)
        self._pool_size = pool_size
        self._pool: Any = None

    def prepare(self) -> None:
        from dashscope.audio.tts_v2 import SpeechSynthesizerObjectPool

        # Connects pool_size sockets one after another (~100 ms polling each,
        # docs/protocol.md#the-vendor-sdks-pool).
        self._pool = SpeechSynthesizerObjectPool(max_size=self._pool_size)

    def one(self, text: str, started: float) -> Sample:
        from dashscope.audio.tts_v2 import AudioFormat, ResultCallback

        first_packet_ms = -1.0
        audio_bytes = 0
        errors: list[str] = []
        completed = threading.Event()

        class Callback(ResultCallback):
            def on_data(self, data: bytes) -> None:
                nonlocal first_packet_ms, audio_bytes
                if first_packet_ms < 0:
                    first_packet_ms = _elapsed_ms(started)
                audio_bytes += len(data)

            def on_complete(self) -> None:
                completed.set()

            def on_error(self, message: Any) -> None:
                errors.append(str(message))
                completed.set()

        synthesizer = self._pool.borrow_synthesizer(
            model=MODEL, voice=VOICE, format=AudioFormat.PCM_16000HZ_MONO_16BIT, callback=Callback()
        )
        try:
            synthesizer.call(text)
            if not completed.wait(REQUEST_TIMEOUT_S):
                raise TimeoutError("no task-finished")
            # The SDK's cleanup runs in its own thread after completion (see the class doc).
            if not synthesizer._stopped.wait(REQUEST_TIMEOUT_S):
                raise TimeoutError("SDK cleanup did not finish")
        except Exception as exc:
            synthesizer.close()
            return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, type(exc).__name__)
        if errors:
            synthesizer.close()  # the guide: never return a failed synthesizer
            return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, "TaskFailed")
        self._pool.return_synthesizer(synthesizer)
        return Sample(first_packet_ms, _elapsed_ms(started), audio_bytes, STATUS_OK)

    def close(self) -> None:
        if self._pool is not None:
            # shutdown() stops the pool's thread but closes no socket
            # (docs/protocol.md#the-vendor-sdks-pool); the process exit does.
            self._pool.shutdown()


# --- the loops ----------------------------------------------------------------------------


async def closed_loop(
    concurrency: int,
    requests: int,
    one: Callable[[int, str, float], Awaitable[Sample]],
    ramp_s: float = 0.0,
) -> list[Sample]:
    """``concurrency`` workers, each starting its next request when the last one ended.

    Worker ``i`` starts ``i * ramp_s / concurrency`` late, so they do not all ask (and then
    all get their first audio) in the same millisecond, round after round.
    """
    samples: list[Sample] = []
    counter = iter(range(requests))

    async def worker(slot: int) -> None:
        await asyncio.sleep(slot * ramp_s / concurrency)
        for index in counter:
            samples.append(await one(slot, TEXTS[index % len(TEXTS)], time.perf_counter()))

    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    return samples


async def open_loop(
    rate: float, requests: int, max_in_flight: int, one: Callable[[int, str, float], Awaitable[Sample]]
) -> list[Sample]:
    """Arrivals every ``1/rate`` s; each is timed from its scheduled start, waits included."""
    free_slots: asyncio.Queue[int] = asyncio.Queue()
    for slot in range(max_in_flight):
        free_slots.put_nowait(slot)
    origin = time.perf_counter()

    async def arrival(index: int) -> Sample:
        scheduled = origin + index / rate
        slot = await free_slots.get()
        try:
            return await one(slot, TEXTS[index % len(TEXTS)], scheduled)
        finally:
            free_slots.put_nowait(slot)

    tasks = []
    for index in range(requests):
        delay = origin + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(arrival(index)))
    return list(await asyncio.gather(*tasks))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _result(samples: list[Sample], wall_s: float, cpu_s: float) -> dict[str, Any]:
    return {
        "samples": [sample.to_row() for sample in samples],
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


async def run_async(args: argparse.Namespace) -> dict[str, Any]:
    """grpc and direct: asyncio workers (closed loop) or arrivals (open loop)."""
    api_key = os.environ.get("DASHSCOPE_API_KEY", "")
    driver: Driver = (
        GrpcDriver(args.target, args.channels, args.min_chunk_ms)
        if args.variant == "grpc"
        else DirectDriver(args.target, api_key)
    )
    slots = args.concurrency
    try:
        await driver.prepare(slots)
        if args.idle:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            return _result([], 0.0, 0.0)
        # Warm-up outside the clock: first calls pay for imports, caches, HTTP/2 settings.
        await closed_loop(min(slots, 4), min(slots, 4), driver.one)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        cpu_before, started = _cpu_s(), time.perf_counter()
        if args.rate:
            samples = await open_loop(args.rate, args.requests, slots, driver.one)
        else:
            samples = await closed_loop(slots, args.requests, driver.one, args.ramp_s)
        wall_s, cpu_s = time.perf_counter() - started, _cpu_s() - cpu_before
    finally:
        await driver.close()
    return _result(samples, wall_s, cpu_s)


def run_threads(args: argparse.Namespace) -> dict[str, Any]:
    """sdk: one thread per concurrent stream, each borrowing, calling and returning in turn."""
    driver = SdkDriver(args.target, os.environ.get("DASHSCOPE_API_KEY", ""), args.sdk_pool_size)
    driver.prepare()
    if args.idle:
        print("ready", flush=True)
        sys.stdin.readline()
        driver.close()
        return _result([], 0.0, 0.0)

    def drive(concurrency: int, requests: int, ramp_s: float = 0.0) -> list[Sample]:
        samples: list[Sample] = []
        counter = itertools.count()
        lock = threading.Lock()

        def worker(slot: int) -> None:
            time.sleep(slot * ramp_s / concurrency)
            while (index := next(counter)) < requests:
                sample = driver.one(TEXTS[index % len(TEXTS)], time.perf_counter())
                with lock:
                    samples.append(sample)

        threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return samples

    try:
        warm = min(args.concurrency, 4)
        drive(warm, warm)
        print("ready", flush=True)
        sys.stdin.readline()
        cpu_before, started = _cpu_s(), time.perf_counter()
        samples = drive(args.concurrency, args.requests, args.ramp_s)
        wall_s, cpu_s = time.perf_counter() - started, _cpu_s() - cpu_before
    finally:
        driver.close()
    return _result(samples, wall_s, cpu_s)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=("grpc", "direct", "sdk"))
    parser.add_argument("--target", required=True, help="voxgate HOST:PORT (grpc) or the upstream ws:// URL")
    parser.add_argument(
        "--concurrency", type=int, required=True, help="closed loop: workers; open loop: most in flight"
    )
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop: arrivals per second (0: closed loop)"
    )
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=0.0,
        help="closed loop: spread the workers' first requests over this long",
    )
    parser.add_argument("--channels", type=int, default=8, help="grpc: HTTP/2 connections used in turn")
    parser.add_argument("--min-chunk-ms", type=int, default=0, help="grpc: SynthesizeRequest.min_chunk_ms")
    parser.add_argument(
        "--idle", action="store_true", help="only open the connections, print ready, exit on a line (RSS)"
    )
    parser.add_argument(
        "--sdk-pool-size", type=int, default=20, help="sdk: SpeechSynthesizerObjectPool max_size (1-100)"
    )
    args = parser.parse_args(argv)
    if args.variant == "sdk":
        if args.rate:
            parser.error("the sdk variant runs closed loop only (one thread per concurrent stream)")
        threading.stack_size(512 * 1024)  # a thread per stream: 1000 of them need no 8 MiB stacks
        result = run_threads(args)
    else:
        result = asyncio.run(run_async(args))
    print("result " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
