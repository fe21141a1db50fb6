"""Mutual TLS end to end: client certificates made here, the subject's common name as the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from harness import TEXT, gateway_settings, running_gateway, wait_serving
from support.certs import Authority
from voxgate.app import App
from voxgate.client import Client, Connection
from voxgate.rpc.callers import key_sha256, new_key
from voxgate.speech.v1 import speech_pb2
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc
from voxgate_dev import DevUpstream

KEY = new_key()


@pytest.fixture
def ca() -> Authority:
    return Authority("voxgate test CA")


@pytest.fixture
def gateway_env(ca: Authority, tmp_path: Path) -> dict[str, Any]:
    cert, key = ca.server().write(tmp_path, "server")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    callers = tmp_path / "callers.toml"
    callers.write_text(
        f'[[caller]]\nname = "reports"\nkey_sha256 = "{key_sha256(KEY)}"\n'
        '[[caller]]\nname = "billing-backend"\n'
        f'key_sha256 = "{key_sha256(new_key())}"\ncharacters_per_minute = 5\n'
    )
    return {
        "VOXGATE_TLS_CERT_FILE": cert,
        "VOXGATE_TLS_KEY_FILE": key,
        "VOXGATE_TLS_CLIENT_CA_FILE": tmp_path / "ca.crt",
        "VOXGATE_CALLERS_FILE": callers,
        "VOXGATE_HEALTH_LISTEN": "127.0.0.1:0",
    }


@pytest.fixture
async def gateway(upstream: DevUpstream, gateway_env: dict[str, Any]) -> AsyncIterator[App]:
    async with running_gateway(gateway_settings(upstream, **gateway_env), wait_ready=False) as app:
        await wait_serving(f"127.0.0.1:{app.health_port}")
        yield app


def connection(tmp_path: Path, issuer: Authority | None, name: str, token: str | None = None) -> Connection:
    if issuer is None:
        return Connection(token=token, ca_file=str(tmp_path / "ca.crt"))
    cert, key = issuer.client(name).write(tmp_path, f"client-{name}")
    return Connection(token=token, ca_file=str(tmp_path / "ca.crt"), cert_file=str(cert), key_file=str(key))


async def synthesize(app: App, how: Connection, text: str = TEXT) -> int:
    audio_bytes = 0
    async with Client(app.address, how) as client:
        async for item in client.stream(speech_pb2.SynthesizeRequest(text=text), timeout_s=30):
            if isinstance(item, bytes):
                audio_bytes += len(item)
    return audio_bytes


async def callers_seen(app: App, how: Connection) -> dict[str, int]:
    async with how.channel(app.address) as channel:
        stats = await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
            stats_pb2.GetStatsRequest(), timeout=10
        )
    return {caller.name: caller.requests for caller in stats.callers}


async def test_a_certificate_of_the_ca_is_the_caller_named_by_its_common_name(
    gateway: App, ca: Authority, tmp_path: Path
) -> None:
    how = connection(tmp_path, ca, "search-backend")
    assert await synthesize(gateway, how) > 1000
    assert await callers_seen(gateway, how) == {"search-backend": 1}


async def test_a_key_over_mtls_names_the_caller_and_a_wrong_key_is_refused(
    gateway: App, ca: Authority, tmp_path: Path
) -> None:
    assert await synthesize(gateway, connection(tmp_path, ca, "search-backend", token=KEY)) > 1000
    assert await callers_seen(gateway, connection(tmp_path, ca, "x")) == {"reports": 1}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await synthesize(gateway, connection(tmp_path, ca, "search-backend", token=new_key()))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_the_quotas_of_the_callers_entry_named_like_the_certificate_apply(
    gateway: App, ca: Authority, tmp_path: Path
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await synthesize(gateway, connection(tmp_path, ca, "billing-backend"), "Too long for five")
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_no_client_certificate_fails_the_handshake(gateway: App, tmp_path: Path) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await synthesize(gateway, connection(tmp_path, None, "", token=KEY))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_of_another_ca_fails_the_handshake(gateway: App, tmp_path: Path) -> None:
    stranger = Authority("another CA")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await synthesize(gateway, connection(tmp_path, stranger, "search-backend", token=KEY))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
