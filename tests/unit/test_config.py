"""Settings: defaults, precedence, errors that name the variable, and the docs table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voxgate import config


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


def test_docs_document_every_variable() -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `(--[a-z-]+)`", table, flags=re.MULTILINE))
    assert rows == {option.env: option.flag for option in config.OPTIONS}
