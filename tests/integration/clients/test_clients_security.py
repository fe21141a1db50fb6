"""The Go, Java and Node clients against a voxgate with TLS and caller keys (docs/security.md).

The gateway runs in this process (tests/conftest.py's parts) with certificates and a callers file
made here; each test runs once per client, as the process a user runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from audio_checks import read_wav
from harness import TEXT, child_env, gateway_settings, running_gateway, wait_serving
from polyglot import COMMANDS, POLYGLOT, Cli, Completed, built
from support.certs import Authority
from voxgate.app import App
from voxgate.rpc.callers import key_sha256, new_key
from voxgate_dev import DevUpstream

KEY = new_key()


@pytest.fixture(params=POLYGLOT)
def cli(request: pytest.FixtureRequest) -> Cli:
    return built(request.param)


@pytest.fixture
def ca() -> Authority:
    return Authority("voxgate clients test CA")


@pytest.fixture
def gateway_env(ca: Authority, tmp_path: Path) -> dict[str, Any]:
    cert, key = ca.server().write(tmp_path, "server")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    callers = tmp_path / "callers.toml"
    callers.write_text(f'[[caller]]\nname = "polyglot"\nkey_sha256 = "{key_sha256(KEY)}"\n')
    return {
        "VOXGATE_TLS_CERT_FILE": cert,
        "VOXGATE_TLS_KEY_FILE": key,
        "VOXGATE_CALLERS_FILE": callers,
        "VOXGATE_HEALTH_LISTEN": "127.0.0.1:0",
    }


@pytest.fixture
async def gateway(upstream: DevUpstream, gateway_env: dict[str, Any]) -> AsyncIterator[App]:
    async with running_gateway(gateway_settings(upstream, **gateway_env), wait_ready=False) as app:
        await wait_serving(f"127.0.0.1:{app.health_port}")
        yield app


async def run_with_env(cli: Cli, *args: str, **env: str) -> Completed:
    proc = await asyncio.create_subprocess_exec(
        *COMMANDS[cli.language],
        *args,
        env=child_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Completed(proc.returncode, stdout.decode(), stderr.decode())


async def test_synth_over_tls_with_a_token_flag(cli: Cli, gateway: App, tmp_path: Path) -> None:
    out = tmp_path / "tls.wav"
    ca_file = str(tmp_path / "ca.crt")
    done = await cli.run(
        "synth", TEXT, "-o", str(out), "--server", gateway.address, "--ca-file", ca_file, "--token", KEY
    )
    assert done.returncode == 0, done.stderr
    assert read_wav(out.read_bytes()).seconds > 1
    assert KEY not in done.stdout + done.stderr


async def test_generate_over_tls_with_the_token_from_voxgate_token(
    cli: Cli, gateway: App, tmp_path: Path
) -> None:
    args = (
        "generate",
        "Say hello",
        "--server",
        gateway.address,
        "--ca-file",
        str(tmp_path / "ca.crt"),
    )
    done = await run_with_env(cli, *args, VOXGATE_TOKEN=KEY)
    assert done.returncode == 0, done.stderr
    assert "Hello! You said: Say hello" in done.stdout


async def test_no_or_a_wrong_token_is_unauthenticated(cli: Cli, gateway: App, tmp_path: Path) -> None:
    for token in ((), ("--token", new_key())):
        done = await cli.run(
            "synth",
            "Hi",
            "-o",
            str(tmp_path / "no.wav"),
            "--server",
            gateway.address,
            "--ca-file",
            str(tmp_path / "ca.crt"),
            *token,
        )
        assert done.returncode == 1
        assert "UNAUTHENTICATED" in done.stderr


async def test_plaintext_against_the_tls_port_fails(cli: Cli, gateway: App, tmp_path: Path) -> None:
    done = await cli.run(
        "synth",
        "Hi",
        "-o",
        str(tmp_path / "plain.wav"),
        "--server",
        gateway.address,
        "--token",
        KEY,
        "--timeout",
        "5",
    )
    assert done.returncode == 1
    assert "UNAVAILABLE" in done.stderr or "DEADLINE_EXCEEDED" in done.stderr


@pytest.mark.parametrize("key_format", ["pkcs8", "sec1"])
async def test_mutual_tls_with_a_client_certificate(
    cli: Cli,
    upstream: DevUpstream,
    gateway_env: dict[str, Any],
    ca: Authority,
    tmp_path: Path,
    key_format: str,
) -> None:
    """The client key as tests/support/certs.py writes it (PKCS#8), and as `openssl ecparam` does (SEC 1)."""
    client_cert, client_key = ca.client("polyglot-mtls").write(tmp_path, "client")
    if key_format == "sec1":
        key = serialization.load_pem_private_key(client_key.read_bytes(), password=None)
        sec1 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
        client_key.write_bytes(sec1)
    env = {**gateway_env, "VOXGATE_TLS_CLIENT_CA_FILE": tmp_path / "ca.crt"}
    async with running_gateway(gateway_settings(upstream, **env), wait_ready=False) as app:
        await wait_serving(f"127.0.0.1:{app.health_port}")
        common = ("--server", app.address, "--ca-file", str(tmp_path / "ca.crt"))
        done = await cli.run(
            "synth",
            "Hi",
            "-o",
            str(tmp_path / "m.wav"),
            *common,
            "--cert",
            str(client_cert),
            "--key",
            str(client_key),
        )
        assert done.returncode == 0, done.stderr
        refused = await cli.run("synth", "Hi", "-o", str(tmp_path / "n.wav"), *common, "--token", KEY)
        assert refused.returncode == 1  # no client certificate: the handshake fails
        [usage] = app.edge.ledger.snapshot()
        assert (usage.name, usage.requests) == ("polyglot-mtls", 1)


@pytest.mark.parametrize("language", ["go", "node"])  # the CLIs with synth-stdin and speak
async def test_streaming_commands_over_tls_with_a_token(language: str, gateway: App, tmp_path: Path) -> None:
    cli = built(language)
    connection = ("--server", gateway.address, "--ca-file", str(tmp_path / "ca.crt"), "--token", KEY)
    piped = await cli.run("synth-stdin", "-o", str(tmp_path / "piped.wav"), *connection, stdin=TEXT.encode())
    assert piped.returncode == 0, piped.stderr
    assert read_wav((tmp_path / "piped.wav").read_bytes()).seconds > 1
    spoken = await cli.run("speak", "Say hello", "-o", str(tmp_path / "spoken.wav"), *connection)
    assert spoken.returncode == 0, spoken.stderr
    assert "Hello! You said: Say hello" in spoken.stdout
    assert read_wav((tmp_path / "spoken.wav").read_bytes()).seconds > 0
    unkeyed = await cli.run("speak", "Hi", "-o", str(tmp_path / "no.wav"), *connection[:4])
    assert unkeyed.returncode == 1
    assert "UNAUTHENTICATED" in unkeyed.stderr


async def test_grpcurl_over_tls_with_a_token(gateway: App, tmp_path: Path) -> None:
    """docs/security.md's grpcurl call: the CA file, the key in a header, reflection included."""
    grpcurl = str(Path(sys.executable).parent / "grpcurl")
    tls = ("-cacert", str(tmp_path / "ca.crt"))
    keyed = (*tls, "-H", f"authorization: Bearer {KEY}")
    request = '{"text": "Hello over TLS", "format": "AUDIO_FORMAT_PCM"}'

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [grpcurl, *args], env=child_env(), capture_output=True, text=True, timeout=60
        )

    listed = await run(*keyed, gateway.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert "voxgate.speech.v1.SpeechService" in listed.stdout
    called = await run(*keyed, "-d", request, gateway.address, "voxgate.speech.v1.SpeechService/Synthesize")
    assert called.returncode == 0, called.stderr
    assert '"audio"' in called.stdout and '"summary"' in called.stdout
    unkeyed = await run(*tls, "-d", request, gateway.address, "voxgate.speech.v1.SpeechService/Synthesize")
    assert unkeyed.returncode != 0 and "Unauthenticated" in unkeyed.stderr
