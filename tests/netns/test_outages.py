"""Outages on a real network path (tests/netns/conftest.py): blackholes and a link flap between
voxgate and the embedded upstream in its own network namespace, with the default settings.

What must hold (docs/operations.md#detection-and-recovery): in a blackhole a call with a 20 s
deadline ends UNAVAILABLE within a few seconds, never RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED;
after the network heals the first call succeeds within ~2 s; no stream ends OK with audio missing.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from harness import API_KEY, running_gateway
from netpath import NetworkPath
from voxgate import config
from voxgate.app import App
from voxgate.client import Client
from voxgate.rpc.errors import MD_NOT_CONNECTED
from voxgate.speech.v1 import speech_pb2

PCM = speech_pb2.AUDIO_FORMAT_PCM
SHORT = "Hello."
LONG = "Hello world. This is voxgate, speaking through a warm pool of connections, at real time."
DEADLINE_S = 20.0
A_FEW_S = 5.0
"""The bound on an UNAVAILABLE in a blackhole (measured ~3 s: docs/operations.md)."""
HEALED_WITHIN_S = 2.0
OK = grpc.StatusCode.OK


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    elapsed_s: float
    audio_bytes: int
    """Audio received by the client."""
    summary_bytes: int | None
    """Audio the summary says was sent (OK calls only)."""
    not_connected: bool = False


async def call(client: Client, text: str, deadline_s: float = DEADLINE_S) -> Outcome:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sink = io.BytesIO()
    try:
        result = await client.synthesize(
            speech_pb2.SynthesizeRequest(text=text, format=PCM), sink, timeout_s=deadline_s
        )
    except grpc.aio.AioRpcError as exc:
        trailers = dict(exc.trailing_metadata() or ())
        marked = trailers.get(MD_NOT_CONNECTED) == "true"
        return Outcome(exc.code(), loop.time() - started, len(sink.getvalue()), None, marked)
    return Outcome(OK, loop.time() - started, len(sink.getvalue()), result.summary.audio_bytes)


def settings(path: NetworkPath) -> config.Settings:
    # The defaults otherwise: the promises above are made for them.
    return config.load(
        {
            "DASHSCOPE_API_KEY": API_KEY,
            "DASHSCOPE_WEBSOCKET_BASE_URL": path.ws_url,
            "DASHSCOPE_HTTP_BASE_URL": path.http_base_url,
            "VOXGATE_DEFAULT_GENERATION_MODEL": "local-echo",
            "VOXGATE_LISTEN": "127.0.0.1:0",
            "VOXGATE_DRAIN_GRACE_S": "1",
        }
    )


@pytest.fixture
async def gateway(path: NetworkPath) -> AsyncIterator[App]:
    async with running_gateway(settings(path)) as app:
        yield app


@pytest.fixture
async def client(gateway: App) -> AsyncIterator[Client]:
    async with Client(gateway.address) as client:
        yield client


def assert_complete(outcome: Outcome, full_bytes: int) -> None:
    """An OK stream carries all of its audio: what the summary says, and what a clean run gives."""
    assert outcome.code is OK
    assert outcome.audio_bytes == outcome.summary_bytes == full_bytes


async def first_success_after_heal(client: Client) -> float:
    """Seconds from now to the end of the first successful call, calling back to back."""
    loop = asyncio.get_running_loop()
    healed_at = loop.time()
    failures: list[Outcome] = []
    while True:
        outcome = await call(client, SHORT)
        if outcome.code is OK:
            assert len(failures) <= 2, f"more than a couple failed after the heal: {failures}"
            return loop.time() - healed_at
        failures.append(outcome)


async def test_idle_blackhole_is_unavailable_within_seconds_and_heals_at_once(
    path: NetworkPath, gateway: App, client: Client
) -> None:
    full = await call(client, SHORT)
    assert full.code is OK
    path.blackhole()
    outcomes = await asyncio.gather(*(call(client, SHORT) for _ in range(8)))
    for outcome in outcomes:
        assert outcome.code is grpc.StatusCode.UNAVAILABLE, outcome
        assert outcome.elapsed_s < A_FEW_S, outcome
        assert outcome.not_connected  # nothing reached the upstream: marked safe to retry
    print(f"blackhole: UNAVAILABLE after {max(o.elapsed_s for o in outcomes):.2f}s at most")
    path.heal()
    healed_s = await first_success_after_heal(client)
    print(f"healed: first success {healed_s:.2f}s after the heal")
    assert healed_s < HEALED_WITHIN_S
    assert_complete(await call(client, SHORT), full.audio_bytes)


async def test_mid_stream_blackhole_ends_every_stream_unavailable_never_ok_short(
    path: NetworkPath, gateway: App, client: Client
) -> None:
    full = await call(client, LONG)
    assert full.code is OK
    calls = [
        client.speech.Synthesize(speech_pb2.SynthesizeRequest(text=LONG, format=PCM), timeout=DEADLINE_S)
        for _ in range(4)
    ]
    for stream in calls:
        first = await stream.read()  # every stream mid-flight
        assert isinstance(first, speech_pb2.SynthesizeResponse) and first.audio
    loop = asyncio.get_running_loop()
    cut_at = loop.time()
    path.blackhole()
    for stream in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while await stream.read() is not grpc.aio.EOF:
                pass
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "incomplete" in (info.value.details() or "")
    detected_s = loop.time() - cut_at
    print(f"mid-stream blackhole: every stream ended UNAVAILABLE within {detected_s:.2f}s")
    assert detected_s < A_FEW_S
    path.heal()
    assert await first_success_after_heal(client) < HEALED_WITHIN_S


async def test_link_flap_under_load_loses_no_audio_and_recovers_at_once(
    path: NetworkPath, gateway: App, client: Client
) -> None:
    full = await call(client, SHORT)
    assert full.code is OK
    loop = asyncio.get_running_loop()
    outcomes: list[tuple[float, Outcome]] = []
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            outcome = await call(client, SHORT)
            outcomes.append((loop.time(), outcome))
            if outcome.code is not OK:
                await asyncio.sleep(0.1)  # a client's retry backoff, not a busy loop

    callers = [asyncio.create_task(caller()) for _ in range(6)]
    try:
        await asyncio.sleep(1.0)  # load running on a warm pool
        path.link(up=False)
        await asyncio.sleep(4.0)  # the outage
        path.link(up=True)
        up_at = loop.time()
        await asyncio.sleep(3.0)  # load running after the heal
    finally:
        stop.set()
        await asyncio.gather(*callers)
    codes = {outcome.code for _, outcome in outcomes}
    assert codes <= {OK, grpc.StatusCode.UNAVAILABLE}, codes
    for _, outcome in outcomes:
        if outcome.code is OK:
            assert_complete(outcome, full.audio_bytes)
    first_ok = min(at for at, outcome in outcomes if outcome.code is OK and at - outcome.elapsed_s >= up_at)
    print(
        f"link flap: {len(outcomes)} calls, {sum(o.code is OK for _, o in outcomes)} OK,"
        f" first success started after the link came up ended {first_ok - up_at:.2f}s after it"
    )
    assert first_ok - up_at < HEALED_WITHIN_S
