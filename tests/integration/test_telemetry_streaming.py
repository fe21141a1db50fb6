"""Traces and metrics of SynthesizeStream and Speak, as an OTLP receiver gets them.

One run for the module, as in tests/integration/test_telemetry.py: a real OTLP receiver, the
embedded upstream in this process (``local-echo`` at a model's pace), ``voxgate serve`` as a child
process exporting to the receiver. Three calls, each with its own ``traceparent``: a
SynthesizeStream of four pieces, a Speak, and a Speak whose speech half fails after audio.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from harness import Process, child_env, wait_serving
from support.otlp import OtlpReceiver, ReceivedSpan, attributes
from voxgate.generation.v1 import generation_pb2
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate.voice.v1 import voice_pb2, voice_pb2_grpc
from voxgate_dev import DevUpstream, Faults, UpstreamOptions

SECRET = "sk-" + os.urandom(16).hex()
SYNTHESIZE_STREAM = "voxgate.speech.v1.SpeechService/SynthesizeStream"
SPEAK = "voxgate.voice.v1.VoiceService/Speak"
PIECES = ("Hello there. ", "This is ", "a stream ", "of pieces.")
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2


@dataclass(frozen=True)
class Run:
    trace_ids: dict[str, str]
    statuses: dict[str, grpc.StatusCode]
    spans: list[ReceivedSpan]
    metrics: list[Metric]

    def server_span(self, call: str) -> ReceivedSpan:
        [span] = [s for s in self.spans if s.trace_id == self.trace_ids[call] and s.kind == SPAN_KIND_SERVER]
        return span

    def in_trace(self, call: str, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == self.trace_ids[call] and s.name.startswith(name)]

    def points(self, name: str) -> list[Any]:
        """The latest data point of metric ``name`` per attribute set (exports are cumulative)."""
        latest: dict[frozenset[tuple[str, object]], Any] = {}
        for metric in self.metrics:
            if metric.name == name:
                kind = metric.WhichOneof("data")
                assert kind is not None
                for point in getattr(metric, kind).data_points:
                    latest[frozenset(attributes(point.attributes).items())] = point
        return list(latest.values())


def metadata(seed: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    trace_id, span_id = f"{seed:02x}" * 16, f"{seed + 1:02x}" * 8
    return trace_id, (("traceparent", f"00-{trace_id}-{span_id}-01"),)


async def stream(channel: grpc.aio.Channel, seed: int) -> tuple[str, grpc.StatusCode]:
    trace_id, md = metadata(seed)

    async def requests() -> AsyncIterator[speech_pb2.SynthesizeStreamRequest]:
        yield speech_pb2.SynthesizeStreamRequest(config=speech_pb2.SynthesisConfig())
        for piece in PIECES:
            yield speech_pb2.SynthesizeStreamRequest(text=piece)
            await asyncio.sleep(0.02)  # a model's pace (the input pattern)

    stub = speech_pb2_grpc.SpeechServiceStub(channel)
    async for _ in stub.SynthesizeStream(requests(), metadata=md, timeout=60):
        pass
    return trace_id, grpc.StatusCode.OK


async def speak(channel: grpc.aio.Channel, seed: int) -> tuple[str, grpc.StatusCode]:
    trace_id, md = metadata(seed)
    request = voice_pb2.SpeakRequest(
        messages=[generation_pb2.Message(role="user", content="Tell me, in words")]
    )
    try:
        async for _ in voice_pb2_grpc.VoiceServiceStub(channel).Speak(request, metadata=md, timeout=60):
            pass
    except grpc.aio.AioRpcError as exc:
        return trace_id, exc.code()
    return trace_id, grpc.StatusCode.OK


async def scenario(receiver: OtlpReceiver) -> Run:
    upstream = DevUpstream(UpstreamOptions(api_key=SECRET, token_interval_ms=10))
    await upstream.start()
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2"],
        child_env(
            DASHSCOPE_API_KEY=SECRET,
            DASHSCOPE_WEBSOCKET_BASE_URL=upstream.ws_url,
            DASHSCOPE_HTTP_BASE_URL=upstream.http_base_url,
            VOXGATE_DEFAULT_GENERATION_MODEL="local-echo",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="250",
        ),
    )
    results: dict[str, tuple[str, grpc.StatusCode]] = {}
    try:
        address = await asyncio.to_thread(server.start, "voxgate listening on ")
        await wait_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            results["stream"] = await stream(channel, 0x21)
            results["speak"] = await speak(channel, 0x43)
            upstream.set_faults(Faults(fail_after_bytes=2000, fail_code="InternalError", times=1))
            results["speak_failed"] = await speak(channel, 0x65)
    finally:
        await asyncio.to_thread(server.terminate)  # the shutdown flushes every span and metric
        await upstream.stop()
    return Run(
        {name: trace for name, (trace, _) in results.items()},
        {name: code for name, (_, code) in results.items()},
        receiver.spans(),
        receiver.metrics(),
    )


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with OtlpReceiver() as receiver:
        yield asyncio.run(scenario(receiver))


def test_synthesize_stream_has_a_server_span_with_pieces_and_text_to_first_audio(run: Run) -> None:
    span = run.server_span("stream")
    assert span.name == SYNTHESIZE_STREAM
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes["voxgate.tts.text_pieces"] == len(PIECES)
    assert 0 < float(span.attributes["voxgate.tts.text_to_first_audio_ms"]) < 5000
    [task] = run.in_trace("stream", "voxgate.tts.task")
    assert task.parent_span_id == span.span_id
    assert task.attributes["voxgate.tts.characters"] == len("".join(PIECES))


def test_speak_has_both_halves_under_its_server_span(run: Run) -> None:
    span = run.server_span("speak")
    assert span.name == SPEAK and run.statuses["speak"] == grpc.StatusCode.OK
    first_token = float(span.attributes["voxgate.voice.time_to_first_token_ms"])
    first_audio = float(span.attributes["voxgate.voice.time_to_first_audio_ms"])
    assert 0 < first_token < first_audio
    assert int(span.attributes["voxgate.tts.text_pieces"]) >= 2
    [chat] = run.in_trace("speak", "chat ")
    [task] = run.in_trace("speak", "voxgate.tts.task")
    assert chat.parent_span_id == task.parent_span_id == span.span_id
    assert task.start_ns < chat.end_ns  # the halves overlap: speech starts while generation runs


def test_a_failed_speak_names_the_half_on_its_span(run: Run) -> None:
    span = run.server_span("speak_failed")
    assert run.statuses["speak_failed"] == grpc.StatusCode.UNAVAILABLE
    assert span.status_code == STATUS_ERROR and span.status_message.startswith("speech failed:")
    assert span.attributes["voxgate.voice.failed_half"] == "speech"


def test_streaming_metrics_arrive(run: Run) -> None:
    [pieces] = run.points("voxgate.tts.text_pieces")
    assert pieces.count == 1 and pieces.sum == len(PIECES)
    [text_to_audio] = run.points("voxgate.tts.text_to_first_audio")
    assert text_to_audio.count == 1
    first_audio = run.points("voxgate.voice.time_to_first_audio")
    assert sum(point.count for point in first_audio) == 2  # both Speak calls had audio
    assert {attributes(point.attributes)["gen_ai.request.model"] for point in first_audio} == {"local-echo"}
    requests = {
        (attributes(p.attributes)["rpc.method"], attributes(p.attributes)["rpc.grpc.status_code"]): p.as_int
        for p in run.points("voxgate.server.requests")
    }
    assert requests[("SynthesizeStream", 0)] == 1
    assert requests[("Speak", 0)] == 1 and requests[("Speak", grpc.StatusCode.UNAVAILABLE.value[0])] == 1
