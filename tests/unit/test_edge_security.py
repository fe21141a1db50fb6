"""Callers file, quota ledger (virtual time) and the protected-mode start check, without sockets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from voxgate import config
from voxgate.rpc.callers import Caller, CallersFile, CallersFileError, Quotas, key_sha256, new_key, parse
from voxgate.rpc.edge import Edge
from voxgate.rpc.quotas import WINDOW_S, Ledger, QuotaExceeded

KEY = "dashscope-key-for-tests"


def entry(name: str, key: str, **quotas: int) -> str:
    lines = ["[[caller]]", f'name = "{name}"', f'key_sha256 = "{key_sha256(key)}"']
    return "\n".join(lines + [f"{quota} = {value}" for quota, value in quotas.items()]) + "\n"


# --- the callers file ---------------------------------------------------------------------------


def test_parse_reads_names_hashes_and_quotas() -> None:
    key = new_key()
    [caller] = parse(entry("billing-backend", key, characters_per_minute=20000), "callers.toml")
    assert caller.name == "billing-backend"
    assert caller.key_sha256 == hashlib.sha256(key.encode()).digest()
    assert caller.quotas == Quotas(characters_per_minute=20000)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[caller]]\nname = 'a'\n", "key_sha256 must be 64 hex digits"),
        ("[[caller]]\nkey_sha256 = '" + "0" * 64 + "'\n", "name: required"),
        (entry("a", "k", charcters_per_minute=5), "unknown field(s) ['charcters_per_minute']"),
        (entry("a", "k", max_concurrent_streams=0), "max_concurrent_streams must be a whole number >= 1"),
        (entry("a", "k") + entry("a", "j"), "caller names must be unique"),
        (entry("a", "k") + entry("b", "k"), "two callers share one key_sha256"),
        ("[[caller]\n", "not valid TOML"),
        ("[callers]\nx = 1\n", "unknown table(s) ['callers']"),
    ],
)
def test_parse_names_the_file_and_the_fault(text: str, reason: str) -> None:
    with pytest.raises(CallersFileError) as caught:
        parse(text, "callers.toml")
    assert str(caught.value).startswith("callers.toml")
    assert reason in str(caught.value)


def test_authenticate_finds_the_key_and_refuses_others(tmp_path: Path) -> None:
    key, other = new_key(), new_key()
    path = tmp_path / "callers.toml"
    path.write_text(entry("a", other) + entry("b", key))
    callers = CallersFile(path)
    found = callers.authenticate(key)
    assert found is not None and found.name == "b"
    assert callers.authenticate(new_key()) is None
    assert callers.authenticate("") is None


def test_a_caller_never_prints_its_hash() -> None:
    caller = Caller("a", bytes.fromhex(key_sha256("secret")))
    assert key_sha256("secret") not in repr(caller)


# --- quotas, in virtual time --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_characters_per_minute_recovers_as_the_window_slides() -> None:
    clock = Clock()
    ledger = Ledger(clock)
    caller = Caller("a", b"", Quotas(characters_per_minute=100))
    ledger.admit(caller, characters=60)
    ledger.release(caller)
    clock.now += 20
    ledger.admit(caller, characters=30)
    ledger.release(caller)
    with pytest.raises(QuotaExceeded) as caught:
        ledger.admit(caller, characters=20)
    # 90 used; 20 more fit once the first 60 expire, 40 s from now.
    assert caught.value.quota == "characters_per_minute"
    assert caught.value.retry_after_s == pytest.approx(WINDOW_S - 20)
    assert caught.value.retry_after_header == "40"
    clock.now += WINDOW_S - 20
    ledger.admit(caller, characters=20)
    [usage] = ledger.snapshot()
    assert (usage.characters, usage.characters_last_minute, usage.refused) == (
        110,
        50,
        {"characters_per_minute": 1},
    )


def test_a_request_larger_than_the_whole_quota_is_told_retrying_cannot_help() -> None:
    ledger = Ledger(Clock())
    with pytest.raises(QuotaExceeded) as caught:
        ledger.admit(Caller("a", b"", Quotas(characters_per_minute=10)), characters=11)
    assert caught.value.retry_after_header is None
    assert "split the text" in str(caught.value)


def test_generation_requests_per_minute_recovers() -> None:
    clock = Clock()
    ledger = Ledger(clock)
    caller = Caller("a", b"", Quotas(generation_requests_per_minute=2))
    for _ in range(2):
        ledger.admit(caller, generation=True)
        ledger.release(caller)
        clock.now += 1
    with pytest.raises(QuotaExceeded) as caught:
        ledger.admit(caller, generation=True)
    assert caught.value.retry_after_s == pytest.approx(WINDOW_S - 2)
    clock.now += WINDOW_S - 2
    ledger.admit(caller, generation=True)


def test_max_concurrent_streams_counts_until_release() -> None:
    ledger = Ledger(Clock())
    caller = Caller("a", b"", Quotas(max_concurrent_streams=1))
    ledger.admit(caller)
    with pytest.raises(QuotaExceeded):
        ledger.admit(caller)
    ledger.release(caller)
    ledger.admit(caller)


# --- protected mode -------------------------------------------------------------------------------


def load(**env: str) -> config.Settings:
    return config.load({"DASHSCOPE_API_KEY": KEY, **env})


def test_a_key_beyond_loopback_without_caller_auth_refuses_to_start() -> None:
    with pytest.raises(config.ConfigError) as caught:
        load(VOXGATE_LISTEN="0.0.0.0:50051")
    message = str(caught.value)
    assert message.startswith("VOXGATE_LISTEN:")
    for fix in (
        "VOXGATE_CALLERS_FILE",
        "voxgate caller-key",
        "VOXGATE_TLS_CLIENT_CA_FILE",
        "VOXGATE_AUTH=none",
    ):
        assert fix in message
    assert KEY not in message


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "[::1]:50051", "localhost:50051", "127.0.0.2:0"])
def test_loopback_stays_zero_config(listen: str) -> None:
    assert load(VOXGATE_LISTEN=listen).listen == listen


def test_no_key_stays_zero_config_on_any_address() -> None:
    assert config.load({"VOXGATE_LISTEN": "0.0.0.0:50051"}).auth == "auto"


def test_auth_none_or_a_callers_file_lets_it_listen_beyond_loopback(tmp_path: Path) -> None:
    assert load(VOXGATE_LISTEN="[::]:50051", VOXGATE_AUTH="none").auth == "none"
    callers = tmp_path / "callers.toml"
    callers.write_text(entry("a", "k"))
    assert load(VOXGATE_LISTEN="[::]:50051", VOXGATE_CALLERS_FILE=str(callers)).callers_file == str(callers)


def test_tls_settings_must_pair_up(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    with pytest.raises(config.ConfigError, match="VOXGATE_TLS_KEY_FILE: is required too"):
        load(VOXGATE_TLS_CERT_FILE=str(cert))
    with pytest.raises(config.ConfigError, match="VOXGATE_TLS_CERT_FILE: is required for mutual TLS"):
        load(VOXGATE_TLS_CLIENT_CA_FILE=str(cert))


def edge_error(**files: Path) -> str:
    paths = {name: str(path) for name, path in files.items()}
    with pytest.raises(config.ConfigError) as caught:
        Edge.load(
            **{"cert_file": None, "key_file": None, "client_ca_file": None, "callers_file": None, **paths}
        )
    return str(caught.value)


def test_unreadable_or_invalid_files_fail_the_start_naming_the_variable(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("not a certificate")
    assert edge_error(callers_file=tmp_path / "missing.toml").startswith("VOXGATE_CALLERS_FILE: ")
    assert edge_error(cert_file=cert, key_file=key) == f"VOXGATE_TLS_KEY_FILE: {key}: no such file"
    key.write_text("not a key")
    assert edge_error(cert_file=cert, key_file=key).startswith("VOXGATE_TLS_CERT_FILE: ")
