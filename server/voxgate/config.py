"""Frozen, validated settings read from environment variables and command-line flags.

Every setting is declared once in :data:`OPTIONS` with its environment variable,
its flag, its default and its meaning; the CLI, the README table and the Helm
chart's tests all read that one list. Errors name the variable (or flag) and say
what was wrong, and :func:`load` checks everything at start, not at first use.

The API key is read from ``DASHSCOPE_API_KEY`` only (never a flag, so it cannot
leak through ``ps``) and is held in a :class:`Secret` that never prints itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from voxgate.generation.multimodal import DEFAULT_MULTIMODAL_PREFIXES
from voxgate.generation.session import HttpConfig
from voxgate.pool import OVERFLOW_POLICIES, OVERFLOW_WAIT, PoolConfig

API_KEY_ENV = "DASHSCOPE_API_KEY"
DEFAULT_WS_URL = "wss://dashscope.aliyuncs.com/api-ws/v1/inference"
DEFAULT_HTTP_URL = "https://dashscope.aliyuncs.com/api/v1"
DEFAULT_GENERATION_MODEL = "qwen-plus"
EMBEDDED_GENERATION_MODEL = "local-echo"
"""The embedded upstream's only model (voxgate_dev.local_model)."""


class ConfigError(ValueError):
    """A setting is invalid; the message starts with the variable or flag at fault."""


class Secret:
    """A string that does not print itself. Call :meth:`reveal` where it is really needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``voxgate serve`` needs. Build it with :func:`load`."""

    listen: str = "127.0.0.1:50051"
    ws_url: str = DEFAULT_WS_URL
    default_model: str = "cosyvoice-v3-flash"
    default_voice: str = "longanyang"
    pool_max_size: int = 16
    pool_min_idle: int | None = None
    pool_ready_min: int | None = None
    pool_max_concurrent_connects: int = 4
    pool_acquire_timeout_s: float = 5.0
    pool_max_idle_s: float = 50.0
    pool_max_lifetime_s: float = 600.0
    pool_overflow: str = OVERFLOW_WAIT
    pool_backoff_max_s: float = 10.0
    pool_leak_warning_s: float = 600.0
    connect_timeout_s: float = 5.0
    task_start_timeout_s: float = 10.0
    frame_timeout_s: float = 30.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    max_attempts: int = 3
    drain_grace_s: float = 20.0
    log_level: str = "INFO"
    log_format: str = "text"
    dev_upstream_rtf: float = 0.0
    http_url: str = DEFAULT_HTTP_URL
    default_generation_model: str | None = None
    http_limit: int = 100
    http_limit_per_host: int = 100
    http_keepalive_s: float = 30.0
    http_dns_cache_s: int = 10
    http_connect_timeout_s: float = 5.0
    http_first_byte_timeout_s: float = 60.0
    http_total_timeout_s: float = 300.0
    dev_upstream_token_interval_ms: float = 20.0
    workers: int = 1
    # -- generation, whole (issue 16) --
    workspace: str | None = None
    multimodal_model_prefixes: tuple[str, ...] = DEFAULT_MULTIMODAL_PREFIXES
    http_retry_sent_timeouts: bool = False
    trace_content_max_chars: int = 16384
    api_key: Secret | None = None

    @property
    def embedded_upstream(self) -> bool:
        """No key: serve on the embedded local upstream instead of DashScope."""
        return self.api_key is None

    @property
    def generation_model(self) -> str:
        """The default generation model: as configured, else the embedded model or ``qwen-plus``."""
        if self.default_generation_model is not None:
            return self.default_generation_model
        return EMBEDDED_GENERATION_MODEL if self.embedded_upstream else DEFAULT_GENERATION_MODEL

    def http_config(self) -> HttpConfig:
        return HttpConfig(
            limit=self.http_limit,
            limit_per_host=self.http_limit_per_host,
            keepalive_s=self.http_keepalive_s,
            dns_cache_s=self.http_dns_cache_s,
            connect_timeout_s=self.http_connect_timeout_s,
            first_byte_timeout_s=self.http_first_byte_timeout_s,
            total_timeout_s=self.http_total_timeout_s,
        )

    def pool_config(self) -> PoolConfig:
        return PoolConfig(
            max_size=self.pool_max_size,
            min_idle=self.pool_min_idle,
            ready_min=self.pool_ready_min,
            max_concurrent_connects=self.pool_max_concurrent_connects,
            acquire_timeout_s=self.pool_acquire_timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            max_idle_s=self.pool_max_idle_s,
            max_lifetime_s=self.pool_max_lifetime_s,
            overflow=self.pool_overflow,
            backoff_max_s=self.pool_backoff_max_s,
            leak_warning_s=self.pool_leak_warning_s,
            ping_interval_s=self.ping_interval_s,
            ping_timeout_s=self.ping_timeout_s,
            # Housekeeping often enough that a ping is due on time, at most once a second.
            housekeeping_interval_s=min(1.0, self.ping_interval_s / 2, self.ping_timeout_s / 2),
        )


# --- parsers ------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a number of seconds > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number >= 0")
    return value


def _listen_address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:50051 or [::]:50051 (port 0 picks a free one)")
    return text


def _ws_url(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        raise ValueError("must start with ws:// or wss://")
    return text


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return text.rstrip("/")


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _overflow_policy(text: str) -> str:
    if text not in OVERFLOW_POLICIES:
        raise ValueError(f"must be one of {', '.join(OVERFLOW_POLICIES)}")
    return text


def _prefix_list(text: str) -> tuple[str, ...]:
    prefixes = tuple(part.strip() for part in text.split(",") if part.strip())
    if not prefixes:
        raise ValueError("must name at least one model prefix, comma-separated")
    return prefixes


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: where it comes from, how it is parsed, what it means."""

    field: str
    env: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("listen", "VOXGATE_LISTEN", _listen_address, "gRPC listen address HOST:PORT"),
    Option(
        "ws_url",
        "DASHSCOPE_WEBSOCKET_BASE_URL",
        _ws_url,
        "DashScope duplex WebSocket URL (Singapore: wss://dashscope-intl.aliyuncs.com/api-ws/v1/inference);"
        " ignored on the embedded upstream",
    ),
    Option("default_model", "VOXGATE_DEFAULT_MODEL", _non_empty, "model used when a request names none"),
    Option("default_voice", "VOXGATE_DEFAULT_VOICE", _non_empty, "voice used when a request names none"),
    Option("pool_max_size", "VOXGATE_POOL_MAX_SIZE", _positive_int, "most upstream connections open at once"),
    Option(
        "pool_min_idle",
        "VOXGATE_POOL_MIN_IDLE",
        _non_negative_int,
        "idle connections kept open ahead of demand (default: pool max size)",
    ),
    Option(
        "pool_ready_min",
        "VOXGATE_POOL_READY_MIN",
        _non_negative_int,
        "open connections needed before health reports SERVING (default: pool min idle)",
    ),
    Option(
        "pool_max_concurrent_connects",
        "VOXGATE_POOL_MAX_CONCURRENT_CONNECTS",
        _positive_int,
        "connects in flight at once while warming or refilling (a ramp, not a herd)",
    ),
    Option(
        "pool_acquire_timeout_s",
        "VOXGATE_POOL_ACQUIRE_TIMEOUT_S",
        _positive_seconds,
        "longest wait for a free connection before RESOURCE_EXHAUSTED",
    ),
    Option(
        "pool_max_idle_s",
        "VOXGATE_POOL_MAX_IDLE_S",
        _positive_seconds,
        "idle connections older than this are replaced, not lent (DashScope drops idle sockets at 60 s)",
    ),
    Option(
        "pool_max_lifetime_s",
        "VOXGATE_POOL_MAX_LIFETIME_S",
        _positive_seconds,
        "connections are replaced after this age, less up to 10 % random jitter",
    ),
    Option(
        "pool_overflow",
        "VOXGATE_POOL_OVERFLOW",
        _overflow_policy,
        "all connections busy: 'wait' (FIFO up to the acquire timeout) or 'overflow' (open a temporary"
        " connection, closed after use)",
    ),
    Option(
        "pool_backoff_max_s",
        "VOXGATE_POOL_BACKOFF_MAX_S",
        _positive_seconds,
        "ceiling of the jittered exponential backoff between failed connects; while the upstream rejects"
        " voxgate (credentials, quota) one probe per this interval",
    ),
    Option(
        "pool_leak_warning_s",
        "VOXGATE_POOL_LEAK_WARNING_S",
        _positive_seconds,
        "warn about a connection lent for longer than this (a stuck stream or a leaked lease)",
    ),
    Option(
        "connect_timeout_s",
        "VOXGATE_CONNECT_TIMEOUT_S",
        _positive_seconds,
        "TCP+TLS+WebSocket handshake limit",
    ),
    Option(
        "task_start_timeout_s",
        "VOXGATE_TASK_START_TIMEOUT_S",
        _positive_seconds,
        "longest wait for task-started after run-task",
    ),
    Option(
        "frame_timeout_s",
        "VOXGATE_FRAME_TIMEOUT_S",
        _positive_seconds,
        "longest upstream silence inside a task before the connection counts as lost",
    ),
    Option(
        "ping_interval_s",
        "VOXGATE_PING_INTERVAL_S",
        _positive_seconds,
        "ping each idle connection this often (WebSocket ping)",
    ),
    Option(
        "ping_timeout_s",
        "VOXGATE_PING_TIMEOUT_S",
        _positive_seconds,
        "an idle connection whose pong is this late is evicted (dead or half-open peer)",
    ),
    Option(
        "max_attempts",
        "VOXGATE_MAX_ATTEMPTS",
        _positive_int,
        "upstream attempts per request (synthesis and generation); retries happen only before"
        " anything was sent to the caller",
    ),
    Option(
        "drain_grace_s",
        "VOXGATE_DRAIN_GRACE_S",
        _non_negative_float,
        "on SIGTERM, how long in-flight streams may run before they are cancelled",
    ),
    Option("log_level", "VOXGATE_LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    Option(
        "log_format",
        "VOXGATE_LOG_FORMAT",
        _log_format,
        "text, or json: one object a line with trace_id and span_id when a span is current",
    ),
    Option(
        "workers",
        "VOXGATE_WORKERS",
        _positive_int,
        "server processes sharing the listen port (SO_REUSEPORT), each with its own pool",
    ),
    Option(
        "dev_upstream_rtf",
        "VOXGATE_DEV_UPSTREAM_RTF",
        _non_negative_float,
        "embedded upstream only: real-time factor of the audio pacing (0 = as fast as produced)",
    ),
    Option(
        "http_url",
        "DASHSCOPE_HTTP_BASE_URL",
        _http_url,
        "DashScope HTTP API base URL (Singapore: https://dashscope-intl.aliyuncs.com/api/v1);"
        " ignored on the embedded upstream",
    ),
    Option(
        "default_generation_model",
        "VOXGATE_DEFAULT_GENERATION_MODEL",
        _non_empty,
        f"generation model used when a request names none (default: {DEFAULT_GENERATION_MODEL};"
        f" on the embedded upstream {EMBEDDED_GENERATION_MODEL})",
    ),
    Option(
        "http_limit",
        "VOXGATE_HTTP_LIMIT",
        _positive_int,
        "most HTTP connections to the upstream open at once; further calls queue for one",
    ),
    Option("http_limit_per_host", "VOXGATE_HTTP_LIMIT_PER_HOST", _positive_int, "the same limit, per host"),
    Option(
        "http_keepalive_s",
        "VOXGATE_HTTP_KEEPALIVE_S",
        _positive_seconds,
        "how long an idle HTTP connection is kept for the next call",
    ),
    Option("http_dns_cache_s", "VOXGATE_HTTP_DNS_CACHE_S", _positive_int, "seconds a DNS answer is cached"),
    Option(
        "http_connect_timeout_s",
        "VOXGATE_HTTP_CONNECT_TIMEOUT_S",
        _positive_seconds,
        "TCP+TLS handshake limit of a new HTTP connection",
    ),
    Option(
        "http_first_byte_timeout_s",
        "VOXGATE_HTTP_FIRST_BYTE_TIMEOUT_S",
        _positive_seconds,
        "streams: longest wait for the stream to start, and then between two of its reads",
    ),
    Option(
        "http_total_timeout_s",
        "VOXGATE_HTTP_TOTAL_TIMEOUT_S",
        _positive_seconds,
        "limit of one whole generation call, waiting for a free connection included; the only limit"
        " of a Generate (not streamed), whose answer comes whole",
    ),
    Option(
        "dev_upstream_token_interval_ms",
        "VOXGATE_DEV_UPSTREAM_TOKEN_INTERVAL_MS",
        _non_negative_float,
        "embedded upstream only: pause between two streamed tokens of the local-echo model",
    ),
    # -- generation, whole (issue 16) --
    Option(
        "workspace",
        "DASHSCOPE_WORKSPACE",
        _non_empty,
        "DashScope workspace id (the vendor SDK's variable): sent as X-DashScope-WorkSpace on every"
        " WebSocket handshake and HTTP call; unset: the account's default workspace",
    ),
    Option(
        "multimodal_model_prefixes",
        "VOXGATE_MULTIMODAL_MODEL_PREFIXES",
        _prefix_list,
        "comma-separated model name prefixes sent to the multimodal endpoint (default:"
        f" {','.join(DEFAULT_MULTIMODAL_PREFIXES)}); a request with an image goes there whatever its model",
    ),
    Option(
        "http_retry_sent_timeouts",
        "VOXGATE_HTTP_RETRY_SENT_TIMEOUTS",
        _bool,
        "retry a generation whose HTTP timeout struck after the whole request was sent (default false:"
        " the upstream may still generate that answer, and bills it, so a retry can bill it twice)",
    ),
    Option(
        "trace_content_max_chars",
        "VOXGATE_TRACE_CONTENT_MAX_CHARS",
        _positive_int,
        "with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true: most characters of prompt or"
        " answer text per span attribute; the rest is cut and marked",
    ),
)


def load(environ: Mapping[str, str], flags: Mapping[str, str | None] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ``, overridden by non-None ``flags`` (by field).

    Raises :class:`ConfigError` naming the variable or flag at fault.
    """
    flags = flags or {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, source = flags.get(option.field), option.flag
        if raw is None:
            raw, source = environ.get(option.env), option.env
        if raw is None or raw == "":
            continue
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            reason = str(exc) if not str(exc).startswith(("invalid literal", "could not convert")) else ""
            raise ConfigError(f"{source}: {reason or 'not a valid number'} (got {raw!r})") from None
    key = environ.get(API_KEY_ENV, "").strip()
    if key:
        values["api_key"] = Secret(key)
    settings = Settings(**values)
    _check_relations(settings)
    return settings


def _check_relations(settings: Settings) -> None:
    try:
        settings.http_config()
    except ValueError as exc:  # unreachable through the parsers; kept as HttpConfig's own guard
        raise ConfigError(f"VOXGATE_HTTP_*: {exc}") from None
    try:
        settings.pool_config()
    except ValueError as exc:
        # PoolConfig's messages start with its field name; name our variable instead.
        field, _, reason = str(exc).partition(" ")
        env_by_field = {option.field: option.env for option in OPTIONS}
        env = env_by_field.get(f"pool_{field}", env_by_field.get(field, "VOXGATE_POOL_*"))
        raise ConfigError(f"{env}: {field} {reason}") from None


def describe(settings: Settings) -> dict[str, object]:
    """Settings as a plain dict for logs; the key appears only as set/unset."""
    out: dict[str, object] = {f.name: getattr(settings, f.name) for f in fields(settings)}
    out["api_key"] = "set" if settings.api_key else "unset (embedded upstream)"
    return out


__all__ = ["API_KEY_ENV", "OPTIONS", "ConfigError", "Option", "Secret", "Settings", "describe", "load"]
