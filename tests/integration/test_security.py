"""Edge security end to end: real TLS handshakes with certificates made here, caller keys, quotas.

The gateway runs in this process (tests/conftest.py's parts) with VOXGATE_TLS_* and
VOXGATE_CALLERS_FILE pointing at files the test writes; health is also served on a plaintext
port (VOXGATE_HEALTH_LISTEN), which is how these tests, like a kubelet, wait for SERVING.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from harness import TEXT, child_env, gateway_settings, running_gateway, wait_serving, wait_until
from support.certs import Authority, serial_of
from voxgate.app import App
from voxgate.client import Client, Connection
from voxgate.generation.v1 import generation_pb2
from voxgate.rpc.auth import QUOTA_METADATA, RETRY_AFTER_METADATA
from voxgate.rpc.callers import key_sha256, new_key
from voxgate.speech.v1 import speech_pb2
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc
from voxgate_dev import DevUpstream

GOOD_KEY = new_key()
OTHER_KEY = new_key()
Request = speech_pb2.SynthesizeRequest


@dataclass
class Pki:
    directory: Path
    ca: Authority
    cert_file: Path
    key_file: Path

    def rotate(self) -> int:
        """Rewrite the server certificate in place (as cert-manager does); its serial number."""
        issued = self.ca.server()
        issued.write(self.directory, "server")
        return issued.serial


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = Authority("voxgate test CA")
    cert_file, key_file = ca.server().write(tmp_path, "server")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    return Pki(tmp_path, ca, cert_file, key_file)


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)


def callers_toml(*entries: tuple[str, str, dict[str, int]]) -> str:
    blocks = []
    for name, key, quotas in entries:
        lines = ["[[caller]]", f'name = "{name}"', f'key_sha256 = "{key_sha256(key)}"']
        lines += [f"{quota} = {value}" for quota, value in quotas.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


@pytest.fixture
def callers_file(tmp_path: Path) -> Path:
    path = tmp_path / "callers.toml"
    path.write_text(callers_toml(("billing-backend", GOOD_KEY, {})))
    return path


@pytest.fixture
def gateway_env(pki: Pki, callers_file: Path) -> dict[str, Any]:
    return {
        "VOXGATE_TLS_CERT_FILE": pki.cert_file,
        "VOXGATE_TLS_KEY_FILE": pki.key_file,
        "VOXGATE_CALLERS_FILE": callers_file,
        "VOXGATE_HEALTH_LISTEN": "127.0.0.1:0",
    }


@pytest.fixture
async def gateway(upstream: DevUpstream, gateway_env: dict[str, Any]) -> AsyncIterator[App]:
    async with running_gateway(gateway_settings(upstream, **gateway_env), wait_ready=False) as app:
        await wait_serving(f"127.0.0.1:{app.health_port}")
        yield app


def tls(pki: Pki, token: str | None = None, **more: Any) -> Connection:
    return Connection(token=token, ca_file=str(pki.directory / "ca.crt"), **more)


async def synthesize(app: App, connection: Connection, text: str = TEXT) -> bytes:
    audio = bytearray()
    async with Client(app.address, connection) as client:
        async for item in client.stream(Request(text=text), timeout_s=30):
            if isinstance(item, bytes):
                audio += item
    return bytes(audio)


async def refused(app: App, connection: Connection, text: str = TEXT) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await synthesize(app, connection, text)
    return caught.value


# --- TLS and keys ------------------------------------------------------------------------------


async def test_the_right_key_over_tls_gets_audio(gateway: App, pki: Pki) -> None:
    assert len(await synthesize(gateway, tls(pki, GOOD_KEY))) > 1000


async def test_plaintext_against_the_tls_port_fails(gateway: App) -> None:
    error = await refused(gateway, Connection(token=GOOD_KEY))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


async def test_tls_without_a_key_is_unauthenticated(gateway: App, pki: Pki) -> None:
    error = await refused(gateway, tls(pki))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in (error.details() or "")


async def test_a_wrong_key_is_unauthenticated(gateway: App, pki: Pki) -> None:
    error = await refused(gateway, tls(pki, OTHER_KEY))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert OTHER_KEY not in (error.details() or "")


async def test_health_is_open_but_reflection_and_stats_need_a_key(gateway: App, pki: Pki) -> None:
    async with tls(pki).channel(gateway.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as stats_error:
            await stats_pb2_grpc.StatsServiceStub(channel).GetStats(stats_pb2.GetStatsRequest(), timeout=10)
        assert stats_error.value.code() is grpc.StatusCode.UNAUTHENTICATED
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.aio.AioRpcError) as reflection_error:
            async for _ in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([listing]), timeout=10
            ):
                pass
        assert reflection_error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    async with tls(pki, GOOD_KEY).channel(gateway.address) as channel:
        stats = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
            stats_pb2.GetStatsRequest(), timeout=10
        )
        assert [pool.name for pool in stats.pools] == ["tts"]


async def test_a_rotated_server_certificate_is_served_without_a_restart(gateway: App, pki: Pki) -> None:
    port = gateway.port

    def served_serial() -> int:
        context = ssl.create_default_context(cafile=str(pki.directory / "ca.crt"))
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port))
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            der = sock.getpeercert(binary_form=True)
        assert der is not None
        return serial_of(ssl.DER_cert_to_PEM_cert(der).encode())

    before = await asyncio.to_thread(served_serial)
    rotated = pki.rotate()
    assert rotated != before
    assert await asyncio.to_thread(served_serial) == rotated
    assert len(await synthesize(gateway, tls(pki, GOOD_KEY))) > 1000


async def test_a_changed_callers_file_takes_effect_without_a_restart(
    gateway: App, pki: Pki, callers_file: Path
) -> None:
    assert (await refused(gateway, tls(pki, OTHER_KEY))).code() is grpc.StatusCode.UNAUTHENTICATED
    rewrite(callers_file, callers_toml(("search-backend", OTHER_KEY, {})))
    assert len(await synthesize(gateway, tls(pki, OTHER_KEY))) > 1000
    # The old key is gone with its entry.
    assert (await refused(gateway, tls(pki, GOOD_KEY))).code() is grpc.StatusCode.UNAUTHENTICATED
    # A broken file is refused; the callers read before stay in force.
    rewrite(callers_file, "[[caller]]\nname = 'x'\n")
    assert len(await synthesize(gateway, tls(pki, OTHER_KEY))) > 1000


# --- quotas ------------------------------------------------------------------------------------


def usage(app: App, name: str) -> dict[str, Any]:
    """The caller's usage as the ledger has it now; empty before its first call."""
    found = [entry for entry in app.edge.ledger.snapshot() if entry.name == name]
    return dataclasses.asdict(found[0]) if found else {}


def trailing(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {key: value for key, value in error.trailing_metadata() or () if isinstance(value, str)}


async def test_characters_per_minute_counts_as_billed_and_says_when_to_retry(
    gateway: App, pki: Pki, callers_file: Path
) -> None:
    rewrite(callers_file, callers_toml(("billing-backend", GOOD_KEY, {"characters_per_minute": 30})))
    connection = tls(pki, GOOD_KEY)
    await synthesize(gateway, connection, "Hello there")  # 11
    # Ten CJK ideographs bill 20: 11 + 20 > 30 (counted as 10 it would pass).
    error = await refused(gateway, connection, "你好你好你好你好你好")
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "characters_per_minute" in (error.details() or "")
    metadata = trailing(error)
    assert metadata[QUOTA_METADATA] == "characters_per_minute"
    assert 1 <= int(metadata[RETRY_AFTER_METADATA]) <= 60
    await synthesize(gateway, connection, "Hi")  # 13 of 30: smaller calls still pass
    # A text the servicer refuses costs nothing: INVALID_ARGUMENT, not a quota refusal.
    assert (await refused(gateway, connection, "x" * 20_001)).code() is grpc.StatusCode.INVALID_ARGUMENT
    snapshot = usage(gateway, "billing-backend")
    assert (snapshot["characters"], snapshot["refused"]) == (13, {"characters_per_minute": 1})


async def test_generation_requests_per_minute(gateway: App, pki: Pki, callers_file: Path) -> None:
    rewrite(callers_file, callers_toml(("billing-backend", GOOD_KEY, {"generation_requests_per_minute": 2})))
    ask = generation_pb2.GenerateRequest(messages=[generation_pb2.Message(role="user", content="Hi")])
    async with Client(gateway.address, tls(pki, GOOD_KEY)) as client:
        for _ in range(2):
            assert (await client.generate(ask, timeout_s=30)).text
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.generate(ask, timeout_s=30)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    metadata = trailing(caught.value)
    assert metadata[QUOTA_METADATA] == "generation_requests_per_minute"
    assert 1 <= int(metadata[RETRY_AFTER_METADATA]) <= 60


async def test_max_concurrent_streams_refuses_the_extra_stream_and_recovers(
    gateway: App, pki: Pki, callers_file: Path, set_faults: Any
) -> None:
    rewrite(callers_file, callers_toml(("billing-backend", GOOD_KEY, {"max_concurrent_streams": 1})))
    set_faults(first_packet_delay_ms=30_000, times=1)  # the first stream stays open until cancelled
    async with Client(gateway.address, tls(pki, GOOD_KEY)) as client:
        held = client.speech.Synthesize(Request(text=TEXT), timeout=60)
        await wait_until(
            lambda: usage(gateway, "billing-backend").get("active_streams") == 1, "first stream admitted"
        )
        error = await refused(gateway, tls(pki, GOOD_KEY), "Second.")
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailing(error)[QUOTA_METADATA] == "max_concurrent_streams"
        held.cancel()
        await wait_until(
            lambda: usage(gateway, "billing-backend")["active_streams"] == 0, "first stream ended"
        )
    assert len(await synthesize(gateway, tls(pki, GOOD_KEY), "Third.")) > 0


async def test_stats_reports_each_caller_by_name(gateway: App, pki: Pki) -> None:
    await synthesize(gateway, tls(pki, GOOD_KEY), "Twelve chars")
    async with tls(pki, GOOD_KEY).channel(gateway.address) as channel:
        stats = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
            stats_pb2.GetStatsRequest(), timeout=10
        )
    [caller] = stats.callers
    assert (caller.name, caller.requests, caller.characters, caller.characters_last_minute) == (
        "billing-backend",
        1,
        12,
        12,
    )


# --- the CLI -----------------------------------------------------------------------------------


async def test_cli_synth_and_stats_take_the_token_from_voxgate_token(
    gateway: App, pki: Pki, tmp_path: Path
) -> None:
    ca_file = str(pki.directory / "ca.crt")
    env = child_env(VOXGATE_TOKEN=GOOD_KEY)

    def cli(*args: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voxgate.cli", *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = tmp_path / "cli.wav"
    done = await asyncio.to_thread(
        cli, "synth", "Hello", "-o", str(out), "--server", gateway.address, "--ca-file", ca_file
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 1000
    stats = await asyncio.to_thread(cli, "stats", "--server", gateway.address, "--ca-file", ca_file)
    assert stats.returncode == 0, stats.stderr
    assert "caller billing-backend: 0 running, 1 calls, 5 characters" in stats.stdout
    refused = await asyncio.to_thread(
        cli, "stats", "--server", gateway.address, "--tls", "--ca-file", ca_file, environ=child_env()
    )
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    for output in (done, stats, refused):
        assert GOOD_KEY not in output.stdout + output.stderr
