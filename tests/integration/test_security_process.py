"""``voxgate serve`` as a process with TLS and caller keys: secrets never show, callers do; protected mode.

One DEBUG run for the module: the embedded upstream in this process with a DashScope-shaped key,
an OTLP receiver, and a voxgate child process with TLS, a callers file, JSON logs at DEBUG and
OpenTelemetry on. Calls with the right key, a wrong key and no key, then SIGTERM. The tests grep
everything that came out (logs, every exported span and metric on the wire, the errors the
client read) for the keys, and find the caller's name where it belongs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import TEXT, Process, child_env
from support.certs import Authority
from support.otlp import OtlpReceiver, ReceivedSpan, attributes
from voxgate.client import Client, Connection
from voxgate.generation.v1 import generation_pb2
from voxgate.rpc.callers import key_sha256, new_key
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream, UpstreamOptions

SECRET = "sk-" + os.urandom(16).hex()  # the shape of a real DashScope key
KEY = new_key()
WRONG_KEY = new_key()
CALLER = "billing-backend"
SYNTHESIZE = "voxgate.speech.v1.SpeechService/Synthesize"


@dataclass(frozen=True)
class Run:
    logs: str
    exported: bytes
    spans: list[ReceivedSpan]
    request_points: list[dict[str, object]]
    errors: list[str]
    exit_code: int


async def scenario(receiver: OtlpReceiver, directory: Path) -> Run:
    ca = Authority("voxgate test CA")
    cert, key = ca.server().write(directory, "server")
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    callers = directory / "callers.toml"
    callers.write_text(f'[[caller]]\nname = "{CALLER}"\nkey_sha256 = "{key_sha256(KEY)}"\n')
    upstream = DevUpstream(UpstreamOptions(api_key=SECRET))
    await upstream.start()
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--log-level", "DEBUG"],
        child_env(
            DASHSCOPE_API_KEY=SECRET,
            DASHSCOPE_WEBSOCKET_BASE_URL=upstream.ws_url,
            DASHSCOPE_HTTP_BASE_URL=upstream.http_base_url,
            VOXGATE_DEFAULT_GENERATION_MODEL="local-echo",
            VOXGATE_LOG_FORMAT="json",
            VOXGATE_TLS_CERT_FILE=str(cert),
            VOXGATE_TLS_KEY_FILE=str(key),
            VOXGATE_CALLERS_FILE=str(callers),
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="250",
            GRPC_VERBOSITY="debug",  # gRPC's own logs too: they must not carry a key either
        ),
    )
    errors: list[str] = []
    try:
        address = await asyncio.to_thread(server.start, "voxgate listening on ")
        ca_file = str(directory / "ca.crt")
        await wait_serving_tls(address, ca_file)
        async with Client(address, Connection(token=KEY, ca_file=ca_file)) as client:
            async for _item in client.stream(speech_pb2.SynthesizeRequest(text=TEXT), timeout_s=30):
                pass
            ask = generation_pb2.GenerateRequest(messages=[generation_pb2.Message(role="user", content="Hi")])
            await client.generate(ask, timeout_s=30)
        for token in (WRONG_KEY, None):
            async with Client(address, Connection(token=token, ca_file=ca_file)) as client:
                try:
                    async for _item in client.stream(speech_pb2.SynthesizeRequest(text="No."), timeout_s=30):
                        pass
                except grpc.aio.AioRpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()} {exc.debug_error_string()}")
    finally:
        exit_code = await asyncio.to_thread(server.terminate)
        await upstream.stop()
    points = [
        attributes(point.attributes)
        for metric in receiver.metrics()
        if metric.name == "voxgate.server.requests"
        for point in metric.sum.data_points
    ]
    return Run(server.output(), receiver.raw(), receiver.spans(), points, errors, exit_code)


async def wait_serving_tls(address: str, ca_file: str, timeout_s: float = 30) -> None:
    """Health is open without a key; over TLS here, since the port speaks nothing else."""
    async with Connection(ca_file=ca_file).channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        async for reply in watch:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
    raise AssertionError("health stream ended before SERVING")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with OtlpReceiver() as receiver:
        yield asyncio.run(scenario(receiver, tmp_path_factory.mktemp("security")))


def test_the_run_served_and_refused_as_expected(run: Run) -> None:
    assert run.exit_code == 0, run.logs
    assert [error.split(":")[0] for error in run.errors] == ["UNAUTHENTICATED", "UNAUTHENTICATED"]


def test_no_key_anywhere_in_logs_spans_metrics_or_errors(run: Run) -> None:
    assert '"level": "DEBUG"' in run.logs  # a real DEBUG run
    for secret in (SECRET, KEY, WRONG_KEY):
        assert secret not in run.logs
        assert secret.encode() not in run.exported
        assert not any(secret in error for error in run.errors)
    assert key_sha256(KEY) not in run.logs


def test_the_caller_name_is_on_the_span_the_metrics_and_the_logs(run: Run) -> None:
    spans = [span for span in run.spans if span.name == SYNTHESIZE]
    callers = sorted(str(span.attributes.get("voxgate.caller", "")) for span in spans)
    assert callers == ["", "", CALLER]  # the two refused calls have no caller
    assert {point.get("voxgate.caller") for point in run.request_points} >= {CALLER}
    logged = [json.loads(line) for line in run.logs.splitlines() if line.startswith("{")]
    assert any(entry.get("caller") == CALLER for entry in logged)


def test_a_key_beyond_loopback_without_caller_auth_refuses_to_start() -> None:
    env = child_env(DASHSCOPE_API_KEY=SECRET, VOXGATE_LISTEN="0.0.0.0:0")
    done = subprocess.run(
        [sys.executable, "-m", "voxgate.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "VOXGATE_LISTEN: 0.0.0.0:0 is reachable beyond this host" in done.stderr
    assert "VOXGATE_CALLERS_FILE" in done.stderr and "VOXGATE_AUTH=none" in done.stderr
    assert SECRET not in done.stderr + done.stdout
