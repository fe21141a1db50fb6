"""Settings: defaults, precedence, errors that name the variable, and the README table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from voxgate import config
from voxgate.generation.session import HttpConfig
from voxgate.pool import PoolConfig
from voxgate.settings import with_table


def test_defaults_without_environment() -> None:
    settings = config.load({})
    assert settings.embedded_upstream
    assert settings.pool_config().effective_min_idle == settings.pool_max_size


def test_pool_health_settings_reach_the_pool() -> None:
    settings = config.load(
        {"VOXGATE_POOL_OVERFLOW": "overflow", "VOXGATE_PING_INTERVAL_S": "0.4", "VOXGATE_PING_TIMEOUT_S": "3"}
    )
    pool = settings.pool_config()
    assert (pool.overflow, pool.ping_interval_s, pool.ping_timeout_s) == ("overflow", 0.4, 3.0)
    assert pool.housekeeping_interval_s == 0.2  # pings come due on time


def test_flags_override_environment() -> None:
    settings = config.load({"VOXGATE_POOL_MAX_SIZE": "4"}, {"pool_max_size": "6"})
    assert settings.pool_max_size == 6


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"VOXGATE_POOL_MAX_SIZE": "many"}, "VOXGATE_POOL_MAX_SIZE"),
        ({"VOXGATE_POOL_MAX_SIZE": "0"}, "VOXGATE_POOL_MAX_SIZE"),
        ({"VOXGATE_POOL_ACQUIRE_TIMEOUT_S": "-1"}, "VOXGATE_POOL_ACQUIRE_TIMEOUT_S"),
        ({"VOXGATE_POOL_ACQUIRE_TIMEOUT_S": "nan"}, "VOXGATE_POOL_ACQUIRE_TIMEOUT_S"),
        ({"VOXGATE_LISTEN": "50051"}, "VOXGATE_LISTEN"),
        ({"DASHSCOPE_WEBSOCKET_BASE_URL": "https://x"}, "DASHSCOPE_WEBSOCKET_BASE_URL"),
        ({"VOXGATE_LOG_LEVEL": "chatty"}, "VOXGATE_LOG_LEVEL"),
        ({"VOXGATE_POOL_MAX_SIZE": "2", "VOXGATE_POOL_MIN_IDLE": "3"}, "VOXGATE_POOL_MIN_IDLE"),
        ({"VOXGATE_POOL_OVERFLOW": "spill"}, "VOXGATE_POOL_OVERFLOW"),
        ({"VOXGATE_POOL_LEAK_WARNING_S": "0"}, "VOXGATE_POOL_LEAK_WARNING_S"),
    ],
)
def test_errors_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(config.ConfigError, match=f"^{named}"):
        config.load(environ)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(config.ConfigError, match=r"^--pool-max-size"):
        config.load({}, {"pool_max_size": "x"})


def test_api_key_is_held_as_a_secret() -> None:
    settings = config.load({"DASHSCOPE_API_KEY": "sk-hidden"})
    assert not settings.embedded_upstream
    assert settings.api_key is not None and settings.api_key.reveal() == "sk-hidden"
    assert "sk-hidden" not in repr(settings) and "sk-hidden" not in str(config.describe(settings))


def test_each_setting_is_declared_once_with_variable_flag_and_help() -> None:
    envs = [spec.env for spec in config.SETTINGS]
    flags = [spec.flag for spec in config.SETTINGS]
    assert len(set(envs)) == len(envs) and len(set(flags)) == len(flags)
    assert all(spec.env and spec.help and spec.metavar for spec in config.SETTINGS)
    declared = {spec.name for spec in config.SETTINGS}
    assert declared == {f.name for f in dataclasses.fields(config.Settings)} - {"api_key"}


def test_defaults_owned_by_the_pool_and_the_http_session_are_theirs() -> None:
    # Settings reads these defaults from the pool's and the session's own dataclasses.
    settings = config.Settings()
    pool, http = PoolConfig(), HttpConfig()
    assert (settings.pool_max_idle_s, settings.pool_acquire_timeout_s) == (
        pool.max_idle_s,
        pool.acquire_timeout_s,
    )
    assert (settings.ping_interval_s, settings.connect_timeout_s) == (
        pool.ping_interval_s,
        pool.connect_timeout_s,
    )
    assert (settings.http_limit, settings.http_total_timeout_s) == (http.limit, http.total_timeout_s)


def test_programmatic_settings_are_checked_too() -> None:
    with pytest.raises(config.Invalid) as invalid:
        config.Settings(pool_max_size=0)
    assert invalid.value.field == "pool_max_size"


def test_errors_carry_the_source_and_the_reason_apart() -> None:
    with pytest.raises(config.ConfigError) as error:
        config.load({"VOXGATE_POOL_MAX_SIZE": "2"}, {"pool_ready_min": "5"})
    assert (error.value.source, error.value.reason) == (
        "--pool-ready-min",
        "must be <= the pool max size (2)",
    )


def test_docs_table_is_the_generated_one() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    committed = path.read_text()
    assert with_table(committed, config.markdown_table()) == committed, (
        "run: python -m voxgate.config --write docs/configuration.md"
    )
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `(--[a-z-]+)`", committed, flags=re.MULTILINE))
    assert rows == {spec.env: spec.flag for spec in config.SETTINGS}
