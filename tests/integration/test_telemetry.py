"""Traces, metrics and logs of a real voxgate process, as an OTLP receiver gets them.

One run for the module: a real OTLP/gRPC receiver (``support.otlp``, the
TraceService and MetricsService of opentelemetry-proto on loopback), the embedded
upstream in this process with a real-looking API key, and ``voxgate serve`` as a child
process with that key, JSON logs at DEBUG and ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at
the receiver. Seven calls, then SIGTERM, whose shutdown flushes every span and metric:

* **caller**: Synthesize sending a W3C ``traceparent``; the first lease of the prewarmed connection;
* **plain**: no ``traceparent`` (a new trace); reuses that connection (pool of one);
* **retry**: the upstream fails the first task before any audio, voxgate retries;
* **invalid**: empty text, INVALID_ARGUMENT;
* **generate**: Generate with every sampling parameter set, the first HTTP request (a new connection);
* **stream**: GenerateStream, on the kept-alive connection;
* **generate_retry**: Generate whose first upstream answer is HTTP 500, retried.

The tests read what arrived. Nothing is mocked: the spans crossed the wire as OTLP.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from harness import TEXT, Process, child_env, wait_serving
from support.otlp import OtlpReceiver, ReceivedSpan, attributes
from voxgate.generation.v1 import generation_pb2, generation_pb2_grpc
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate_dev import DevUpstream, Faults, GenerationFaults, UpstreamOptions

SECRET = "sk-" + os.urandom(16).hex()  # the shape of a real DashScope key
SYNTHESIZE = "voxgate.speech.v1.SpeechService/Synthesize"
GENERATE = "voxgate.generation.v1.GenerationService/Generate"
GENERATE_STREAM = "voxgate.generation.v1.GenerationService/GenerateStream"
RPCS = (SYNTHESIZE, GENERATE, GENERATE_STREAM)
PROMPT = "Tell me about connection pools"
SAMPLING = generation_pb2.Sampling(  # values exact in float32, as the proto carries them
    max_tokens=64,
    temperature=0.5,
    top_p=0.75,
    top_k=20,
    seed=7,
    stop=["zzz"],
    presence_penalty=0.25,
    repetition_penalty=1.125,
    enable_thinking=False,
)
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
STATUS_UNSET, STATUS_ERROR = 0, 2
INJECTED = "injected failure in attempt 1"


@dataclass(frozen=True)
class Call:
    """One RPC as the test client saw it."""

    trace_id: str  # sent in traceparent; "" if none was sent
    parent_span_id: str
    audio_bytes: int = 0
    audio_chunks: int = 0
    summary: speech_pb2.SynthesisSummary | None = None
    status: grpc.StatusCode = grpc.StatusCode.OK


@dataclass(frozen=True)
class Generation:
    """One Generate or GenerateStream call as the test client saw it (its last message, if streamed)."""

    trace_id: str
    parent_span_id: str
    reply: generation_pb2.GenerateResponse | generation_pb2.GenerateStreamResponse


@dataclass(frozen=True)
class Run:
    calls: dict[str, Call]
    generations: dict[str, Generation]
    upstream_port: int
    serving_exported: bool
    """A periodic export reported the pool serving (voxgate.pool.serving = 1)."""
    spans: list[ReceivedSpan]
    metrics: list[Metric]
    raw_exports: bytes
    logs: str
    exit_code: int

    def server_span(self, call: str) -> ReceivedSpan:
        found: Call | Generation = self.calls[call] if call in self.calls else self.generations[call]
        trace_id = found.trace_id or self._unclaimed_trace()
        [span] = [s for s in self.spans if s.trace_id == trace_id and s.name in RPCS]
        return span

    def children(self, parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
        found = [s for s in self.spans if s.parent_span_id == parent.span_id and s.name == name]
        return sorted(found, key=lambda s: s.start_ns)

    def _unclaimed_trace(self) -> str:
        claimed = {call.trace_id for call in self.calls.values()}
        claimed |= {generation.trace_id for generation in self.generations.values()}
        [trace_id] = {s.trace_id for s in self.spans if s.name in RPCS} - claimed
        return trace_id

    def last_points(self, name: str) -> dict[frozenset[tuple[str, object]], Any]:
        """The latest data point of metric ``name`` per attribute set (exports are cumulative)."""
        points: dict[frozenset[tuple[str, object]], Any] = {}
        for metric in self.metrics:
            if metric.name != name:
                continue
            kind = metric.WhichOneof("data")
            assert kind is not None
            for point in getattr(metric, kind).data_points:
                key = frozenset(attributes(point.attributes).items())
                points[key] = point
        return points


def traceparent(seed: int) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """A trace id, a parent span id, and the metadata that carries them."""
    trace_id, span_id = f"{seed:02x}" * 16, f"{seed + 1:02x}" * 8
    return trace_id, span_id, (("traceparent", f"00-{trace_id}-{span_id}-01"),)


async def generate(channel: grpc.aio.Channel, seed: int, *, stream: bool = False) -> Generation:
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    trace_id, parent, metadata = traceparent(seed)
    messages = [generation_pb2.Message(role="user", content=PROMPT)]
    reply: generation_pb2.GenerateResponse | generation_pb2.GenerateStreamResponse
    if stream:
        request = generation_pb2.GenerateStreamRequest(messages=messages)
        [*_, reply] = [piece async for piece in stub.GenerateStream(request, metadata=metadata, timeout=60)]
    else:
        unary = generation_pb2.GenerateRequest(messages=messages, sampling=SAMPLING)
        reply = await stub.Generate(unary, metadata=metadata, timeout=60)
    return Generation(trace_id, parent, reply)


async def synthesize(stub: speech_pb2_grpc.SpeechServiceAsyncStub, text: str, seed: int | None) -> Call:
    trace_id = parent = ""
    metadata: tuple[tuple[str, str], ...] = ()
    if seed is not None:
        trace_id, parent, metadata = traceparent(seed)
    audio_bytes = chunks = 0
    summary = None
    try:
        async for reply in stub.Synthesize(
            speech_pb2.SynthesizeRequest(text=text), metadata=metadata, timeout=60
        ):
            if reply.WhichOneof("content") == "audio":
                audio_bytes += len(reply.audio)
                chunks += 1
            else:
                summary = reply.summary
    except grpc.aio.AioRpcError as exc:
        return Call(trace_id, parent, audio_bytes, chunks, None, exc.code())
    return Call(trace_id, parent, audio_bytes, chunks, summary)


def serving_exported(receiver: OtlpReceiver) -> bool:
    return any(
        point.as_int == 1
        for metric in receiver.metrics()
        if metric.name == "voxgate.pool.serving"
        for point in metric.gauge.data_points
    )


async def scenario(receiver: OtlpReceiver) -> Run:
    upstream = DevUpstream(UpstreamOptions(api_key=SECRET))
    await upstream.start()
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "1", "--log-level", "DEBUG"],
        child_env(
            DASHSCOPE_API_KEY=SECRET,
            DASHSCOPE_WEBSOCKET_BASE_URL=upstream.ws_url,
            DASHSCOPE_HTTP_BASE_URL=upstream.http_base_url,
            VOXGATE_DEFAULT_GENERATION_MODEL="local-echo",
            VOXGATE_LOG_FORMAT="json",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_SERVICE_NAME="voxgate-under-test",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test",
            OTEL_METRIC_EXPORT_INTERVAL="250",  # ms: metrics also arrive while it serves
        ),
    )
    try:
        address = await asyncio.to_thread(server.start, "voxgate listening on ")
        await wait_serving(address)  # the pool is warm: the first call meets a prewarmed connection
        async with grpc.aio.insecure_channel(address) as channel:
            stub = speech_pb2_grpc.SpeechServiceStub(channel)
            calls = {"caller": await synthesize(stub, TEXT, seed=0x11)}
            calls["plain"] = await synthesize(stub, "Again, please.", seed=None)
            upstream.set_faults(Faults(fail_after_bytes=0, fail_message=INJECTED, times=1))
            calls["retry"] = await synthesize(stub, "Second time lucky.", seed=0x33)
            calls["invalid"] = await synthesize(stub, "", seed=0x55)
            generations = {"generate": await generate(channel, 0x77)}
            generations["stream"] = await generate(channel, 0x99, stream=True)
            upstream.set_faults(Faults(generation=GenerationFaults(error_status=500), times=1))
            generations["generate_retry"] = await generate(channel, 0xBB)
        # A periodic export while serving (the last one comes after the pool closed).
        serving_seen = await asyncio.to_thread(receiver.wait_for, lambda: serving_exported(receiver), 60)
    finally:
        exit_code = await asyncio.to_thread(server.terminate)
        await upstream.stop()
    return Run(
        calls,
        generations,
        upstream.port,
        serving_seen,
        receiver.spans(),
        receiver.metrics(),
        receiver.raw(),
        server.output(),
        exit_code,
    )


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with OtlpReceiver() as receiver:
        yield asyncio.run(scenario(receiver))


# --- the run itself -----------------------------------------------------------------------------


def test_every_call_ended_as_the_client_saw_it_and_the_server_exited_cleanly(run: Run) -> None:
    assert run.exit_code == 0, run.logs
    assert [call.status for call in run.calls.values()] == [grpc.StatusCode.OK] * 3 + [
        grpc.StatusCode.INVALID_ARGUMENT
    ]
    retry = run.calls["retry"].summary
    assert retry is not None and retry.attempts == 2
    assert [g.reply.attempts for g in run.generations.values()] == [1, 1, 2]


# --- propagation and the server span -------------------------------------------------------------


def test_a_callers_traceparent_continues_through_voxgate(run: Run) -> None:
    call = run.calls["caller"]
    span = run.server_span("caller")
    assert span.trace_id == call.trace_id
    assert span.parent_span_id == call.parent_span_id
    assert span.kind == SPAN_KIND_SERVER


def test_a_call_without_traceparent_starts_a_new_trace(run: Run) -> None:
    span = run.server_span("plain")
    assert span.parent_span_id == ""
    assert span.trace_id not in {call.trace_id for call in run.calls.values()}


def test_the_server_span_has_the_rpc_attributes_and_the_calls_outcome(run: Run) -> None:
    call, span = run.calls["caller"], run.server_span("caller")
    assert call.summary is not None
    assert span.name == SYNTHESIZE
    assert span.attributes == {
        "rpc.system": "grpc",
        "rpc.service": "voxgate.speech.v1.SpeechService",
        "rpc.method": "Synthesize",
        "rpc.grpc.status_code": 0,
        "network.peer.address": "127.0.0.1",
        "network.peer.port": span.attributes["network.peer.port"],
        "voxgate.tts.attempts": 1,
        "voxgate.tts.audio_bytes": call.audio_bytes,
        "voxgate.tts.first_packet_delay_ms": call.summary.first_packet_delay_ms,
    }
    assert isinstance(span.attributes["network.peer.port"], int)
    assert call.summary.first_packet_delay_ms > 0
    assert span.status_code == STATUS_UNSET


def test_the_resource_comes_from_the_otel_variables(run: Run) -> None:
    resource = run.server_span("caller").resource
    assert resource["service.name"] == "voxgate-under-test"
    assert resource["deployment.environment.name"] == "test"


def test_a_rejected_request_has_an_error_span_with_its_status_and_no_children(run: Run) -> None:
    span = run.server_span("invalid")
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert span.status_code == STATUS_ERROR
    assert span.status_message == "text: must not be empty"
    assert [s for s in run.spans if s.parent_span_id == span.span_id] == []


# --- the pool acquire span --------------------------------------------------------------------


def test_the_pool_acquire_span_says_wait_reuse_age_and_the_pool_at_that_moment(run: Run) -> None:
    first, second = run.calls["caller"].summary, run.calls["plain"].summary
    assert first is not None and second is not None
    [acquire_1] = run.children(run.server_span("caller"), "voxgate.pool.acquire")
    [acquire_2] = run.children(run.server_span("plain"), "voxgate.pool.acquire")
    # A pool of one: the call holds the only connection, nobody waits, nothing overflows.
    pool_then = {
        "voxgate.pool.name": "tts",
        "voxgate.pool.connection.idle": 0,
        "voxgate.pool.connection.used": 1,
        "voxgate.pool.connection.pending_requests": 0,
        "voxgate.pool.connection.max": 1,
        "voxgate.pool.lease.overflow": False,
        "voxgate.pool.lease.queued": False,
        "voxgate.pool.connection.warm": True,
    }
    for acquire, summary, reused in ((acquire_1, first, False), (acquire_2, second, True)):
        assert acquire.attributes == {
            **pool_then,
            "voxgate.pool.connection.reused": reused,
            "voxgate.pool.connection.wait_time_ms": summary.pool_wait_ms,
            "voxgate.pool.connection.age_ms": summary.connection_age_ms,
        }
        assert acquire.end_ns - acquire.start_ns == pytest.approx(summary.pool_wait_ms * 1e6, abs=1e4)
    # The same connection, older at its second lease.
    age = "voxgate.pool.connection.age_ms"
    assert acquire_2.attributes[age] > acquire_1.attributes[age]


# --- the upstream task span -------------------------------------------------------------------


def test_the_upstream_task_span_has_every_fact_of_the_task(run: Run) -> None:
    call, server = run.calls["caller"], run.server_span("caller")
    assert call.summary is not None
    [acquire] = run.children(server, "voxgate.pool.acquire")
    [task] = run.children(server, "voxgate.tts.task")
    assert task.kind == SPAN_KIND_CLIENT
    assert task.attributes == {
        "voxgate.tts.task_id": call.summary.task_id,
        "voxgate.tts.request_id": call.summary.request_id,
        "voxgate.tts.model": "cosyvoice-v3-flash",  # the server's defaults
        "voxgate.tts.voice": "longanyang",
        "voxgate.tts.format": "wav",
        "voxgate.tts.sample_rate": 22050,
        "voxgate.tts.characters": len(TEXT),  # ASCII: one character each
        "voxgate.tts.audio_bytes": call.audio_bytes,
        "voxgate.tts.audio_chunks": call.audio_chunks,
        "voxgate.tts.attempt": 1,
        "voxgate.tts.first_packet_delay_ms": call.summary.upstream_first_packet_delay_ms,
    }
    assert len(call.summary.task_id) == 32 and call.audio_chunks > 1
    assert acquire.end_ns <= task.start_ns  # borrowed first, then the task ran
    assert server.start_ns <= acquire.start_ns and task.end_ns <= server.end_ns


def test_the_first_packet_is_an_event_on_the_task_span(run: Run) -> None:
    call = run.calls["caller"]
    assert call.summary is not None
    [task] = run.children(run.server_span("caller"), "voxgate.tts.task")
    [(name, attributes)] = task.events
    assert name == "voxgate.tts.first_packet"
    assert attributes == {"voxgate.tts.first_packet_delay_ms": call.summary.upstream_first_packet_delay_ms}


# --- retries and evictions --------------------------------------------------------------------


def test_a_retry_and_the_eviction_of_the_failed_connection_are_events(run: Run) -> None:
    server = run.server_span("retry")
    retry = server.event("voxgate.retry")
    assert retry["voxgate.retry.attempt"] == 1
    assert INJECTED in str(retry["voxgate.retry.reason"])
    assert retry["voxgate.retry.delay_ms"] > 0
    evicted = server.event("voxgate.pool.connection.evicted")
    assert evicted["voxgate.pool.eviction.reason"] == "discarded"
    assert server.attributes["voxgate.tts.attempts"] == 2
    assert server.status_code == STATUS_UNSET


def test_each_attempt_has_its_own_acquire_and_task_span(run: Run) -> None:
    server = run.server_span("retry")
    acquires = run.children(server, "voxgate.pool.acquire")
    failed, succeeded = run.children(server, "voxgate.tts.task")
    assert len(acquires) == 2
    assert [failed.attributes["voxgate.tts.attempt"], succeeded.attributes["voxgate.tts.attempt"]] == [1, 2]
    assert failed.status_code == STATUS_ERROR and INJECTED in failed.status_message
    assert "voxgate.tts.audio_bytes" not in failed.attributes  # it never finished
    assert succeeded.status_code == STATUS_UNSET
    # The retry used a new connection: the failed one was closed, not lent again.
    assert acquires[1].attributes["voxgate.pool.connection.reused"] is False


# --- metrics ------------------------------------------------------------------------------------


def test_request_counts_and_durations_arrive_by_method_and_status(run: Run) -> None:
    def key(rpc: str, code: grpc.StatusCode) -> frozenset[tuple[str, object]]:
        service, method = rpc.split("/")
        return frozenset(
            {("rpc.service", service), ("rpc.method", method), ("rpc.grpc.status_code", code.value[0])}
        )

    ok, invalid = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
    requests = run.last_points("voxgate.server.requests")
    assert {k: p.as_int for k, p in requests.items()} == {
        key(SYNTHESIZE, ok): 3,
        key(SYNTHESIZE, invalid): 1,
        key(GENERATE, ok): 2,
        key(GENERATE_STREAM, ok): 1,
    }
    durations = run.last_points("voxgate.server.request.duration")
    assert durations[key(SYNTHESIZE, ok)].count == 3
    assert durations[key(GENERATE, ok)].count == 2


def test_first_packet_and_pool_wait_histograms_arrive(run: Run) -> None:
    [first_packet] = run.last_points("voxgate.tts.first_packet_delay").values()
    assert first_packet.count == 3  # the three calls with audio
    [wait] = run.last_points("voxgate.pool.connection.wait_time").values()
    assert wait.count == 4  # one lease per attempt


def test_connection_counters_arrive(run: Run) -> None:
    tts = ("voxgate.pool.name", "tts")
    reused = run.last_points("voxgate.pool.connection.reused")
    assert reused[frozenset({tts})].as_int == 2  # plain, and retry's 1st
    evicted = run.last_points("voxgate.pool.connection.evicted")
    discarded = frozenset({tts, ("voxgate.pool.eviction.reason", "discarded")})
    assert evicted[discarded].as_int == 1
    created = run.last_points("voxgate.pool.connection.created")
    assert created[frozenset({tts})].as_int >= 2  # prewarm + replacement
    leases = run.last_points("voxgate.pool.leases")
    assert sum(p.as_int for p in leases.values()) == 4
    assert {dict(key)["voxgate.pool.lease.overflow"] for key in leases} == {False}  # policy: wait


def test_pool_gauges_arrive(run: Run) -> None:
    tts = ("voxgate.pool.name", "tts")
    count = run.last_points("voxgate.pool.connection.count")
    states = {dict(k)["voxgate.pool.connection.state"] for k in count}
    assert states == {"idle", "used"}
    [maximum] = run.last_points("voxgate.pool.connection.max").values()
    assert maximum.as_int == 1
    assert frozenset({tts}) in run.last_points("voxgate.pool.connection.pending_requests")
    assert run.serving_exported  # 1 while it served...
    [serving] = run.last_points("voxgate.pool.serving").values()
    assert serving.as_int == 0  # ...and 0 in the last export, made after the pool closed


# --- logs and secrets ---------------------------------------------------------------------------


def test_logs_are_json_lines_with_the_trace_and_span_of_their_request(run: Run) -> None:
    lines = [line for line in run.logs.splitlines() if not line.startswith("voxgate listening on ")]
    records = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    [retried] = [r for r in records if r["message"].startswith("attempt 1 failed before any audio")]
    server = run.server_span("retry")
    assert (retried["trace_id"], retried["span_id"]) == (server.trace_id, server.span_id)


def test_the_api_key_is_in_no_span_metric_or_log(run: Run) -> None:
    assert run.spans and run.metrics
    assert SECRET.encode() not in run.raw_exports
    assert SECRET not in repr(run.spans) + repr(run.metrics)
    assert SECRET not in run.logs
    # Not vacuous: at DEBUG the WebSocket handshake with the key was logged, redacted.
    assert "Bearer [REDACTED]" in run.logs


# --- generation -----------------------------------------------------------------------------------


def test_a_generate_attempt_is_a_genai_chat_span_with_every_parameter_and_the_usage(run: Run) -> None:
    reply = run.generations["generate"].reply
    server = run.server_span("generate")
    assert server.trace_id == run.generations["generate"].trace_id and server.kind == SPAN_KIND_SERVER
    assert server.attributes["rpc.method"] == "Generate"
    [chat] = run.children(server, "chat local-echo")
    assert chat.kind == SPAN_KIND_CLIENT
    create_ms = chat.attributes.pop("voxgate.http.connection.create_time_ms")
    assert create_ms > 0
    assert chat.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "dashscope",
        "gen_ai.request.model": "local-echo",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.75,
        "gen_ai.request.top_k": 20,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ["zzz"],
        "gen_ai.request.presence_penalty": 0.25,
        "voxgate.generation.request.repetition_penalty": 1.125,
        "voxgate.generation.request.enable_thinking": False,
        "voxgate.generation.attempt": 1,
        "server.address": "127.0.0.1",
        "server.port": run.upstream_port,
        "gen_ai.response.id": reply.request_id,
        "gen_ai.response.finish_reasons": [reply.finish_reason],
        "gen_ai.usage.input_tokens": reply.usage.input_tokens,
        "gen_ai.usage.output_tokens": reply.usage.output_tokens,
        # The process's first upstream HTTP request: aiohttp opened a connection for it.
        "voxgate.http.connection.reused": False,
    }
    assert reply.finish_reason == "stop" and reply.usage.output_tokens > 0


def test_a_streamed_generation_records_the_first_chunk_on_a_kept_alive_connection(run: Run) -> None:
    reply = run.generations["stream"].reply
    server = run.server_span("stream")
    assert server.attributes["rpc.method"] == "GenerateStream"
    [chat] = run.children(server, "chat local-echo")
    first_chunk_ms = chat.attributes["voxgate.generation.time_to_first_chunk_ms"]
    assert 0 < first_chunk_ms < (chat.end_ns - chat.start_ns) / 1e6
    assert [name for name, _ in chat.events] == ["voxgate.generation.first_chunk"]
    assert chat.events[0][1] == {"voxgate.generation.time_to_first_chunk_ms": first_chunk_ms}
    assert chat.attributes["voxgate.http.connection.reused"] is True  # aiohttp said so
    assert "voxgate.http.connection.create_time_ms" not in chat.attributes
    assert chat.attributes["gen_ai.response.id"] == reply.request_id
    assert chat.attributes["gen_ai.usage.output_tokens"] == reply.usage.output_tokens
    assert "gen_ai.request.temperature" not in chat.attributes  # only parameters that were set


def test_a_retried_generation_has_a_retry_event_and_a_failed_then_a_good_attempt(run: Run) -> None:
    server = run.server_span("generate_retry")
    retry = server.event("voxgate.retry")
    assert retry["voxgate.retry.attempt"] == 1 and "InternalError" in retry["voxgate.retry.reason"]
    failed, succeeded = run.children(server, "chat local-echo")
    assert [
        failed.attributes["voxgate.generation.attempt"],
        succeeded.attributes["voxgate.generation.attempt"],
    ] == [
        1,
        2,
    ]
    assert failed.status_code == STATUS_ERROR and failed.attributes["error.type"] == "UpstreamError"
    assert "gen_ai.response.id" not in failed.attributes
    assert succeeded.status_code == STATUS_UNSET
    assert succeeded.attributes["gen_ai.response.id"] == run.generations["generate_retry"].reply.request_id


def test_generation_metrics_arrive(run: Run) -> None:
    [ttft] = run.last_points("voxgate.generation.time_to_first_token").values()
    assert ttft.count == 1  # the one stream
    usage = run.last_points("gen_ai.client.token.usage")
    by_type = {dict(key)["gen_ai.token.type"]: point.count for key, point in usage.items()}
    assert by_type == {"input": 3, "output": 3}
    requests = run.last_points("voxgate.server.requests")
    by_method = {
        (dict(k)["rpc.method"], dict(k)["rpc.grpc.status_code"]): p.as_int for k, p in requests.items()
    }
    assert by_method[("Generate", 0)] == 2 and by_method[("GenerateStream", 0)] == 1
    reused = run.last_points("voxgate.http.connection.reused")
    assert sum(p.as_int for p in reused.values()) >= 1
    created = run.last_points("voxgate.http.connection.created")
    assert sum(p.as_int for p in created.values()) >= 1
