"""Frozen, validated settings read from environment variables and command-line flags.

Every setting is declared once, as a field of :class:`Settings` (see voxgate.settings):
its variable, flag, default, help and checks. The CLI, the configuration reference
(docs/configuration.md: ``python -m voxgate.config --write docs/configuration.md``)
and the Helm chart's tests all read those declarations. Errors name the variable (or flag)
and say what was wrong, and :func:`load` checks everything at start, not at first use.

The API key is read from ``DASHSCOPE_API_KEY`` only (never a flag, so it cannot
leak through ``ps``) and is held in a :class:`Secret` that never prints itself.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from voxgate import settings as declared
from voxgate.generation.multimodal import DEFAULT_MULTIMODAL_PREFIXES, parse_prefixes
from voxgate.generation.session import HttpConfig
from voxgate.pool import OVERFLOW_POLICIES, PoolConfig
from voxgate.rpc import security
from voxgate.rpc.security import AUTH_MODES, file_path
from voxgate.settings import (
    ConfigError,
    Invalid,
    Setting,
    above,
    at_least,
    boolean,
    integer,
    non_empty,
    number,
    one_of,
    setting,
    stripped,
    validate,
)

API_KEY_ENV = "DASHSCOPE_API_KEY"
DEFAULT_WS_URL = "wss://dashscope.aliyuncs.com/api-ws/v1/inference"
DEFAULT_HTTP_URL = "https://dashscope.aliyuncs.com/api/v1"
DEFAULT_GENERATION_MODEL = "qwen-plus"
EMBEDDED_GENERATION_MODEL = "local-echo"
"""The embedded upstream's only model (voxgate_dev.local_model)."""
EMBEDDED_URL = "embedded local upstream (loopback)"
"""What the settings line shows for the DashScope URLs when no key is set: they are not used."""


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


# --- parsers of voxgate's own formats (the generic ones are in voxgate.settings) -----------


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


def _upper(text: str) -> str:
    return text.strip().upper()


def _lower(text: str) -> str:
    return text.strip().lower()


_POOL: dict[str, Any] = {field.name: field.default for field in fields(PoolConfig)}
_HTTP: dict[str, Any] = {field.name: field.default for field in fields(HttpConfig)}
SECONDS = "SECONDS"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``voxgate serve`` needs. Build it with :func:`load`.

    Each field declares its variable, flag, default, help and checks (voxgate.settings);
    where the pool or the HTTP session owns a default, the field reads it from there.
    """

    listen: str = setting(
        "127.0.0.1:50051",
        _listen_address,
        "gRPC listen address ([::]:50051 for all interfaces; port 0 picks a free one)",
        env="VOXGATE_LISTEN",
        metavar="HOST:PORT",
    )
    ws_url: str = setting(
        DEFAULT_WS_URL,
        _ws_url,
        "DashScope duplex WebSocket URL (Singapore: wss://dashscope-intl.aliyuncs.com/api-ws/v1/inference);"
        " ignored on the embedded upstream",
        env="DASHSCOPE_WEBSOCKET_BASE_URL",
        metavar="URL",
    )
    default_model: str = setting(
        "cosyvoice-v3-flash",
        stripped,
        "model used when a request names none",
        check=non_empty,
        env="VOXGATE_DEFAULT_MODEL",
        metavar="MODEL",
    )
    default_voice: str = setting(
        "longanyang",
        stripped,
        "voice used when a request names none",
        check=non_empty,
        env="VOXGATE_DEFAULT_VOICE",
        metavar="VOICE",
    )
    # The gateway's own default: twice the pool's library default of 8.
    pool_max_size: int = setting(
        16,
        integer,
        "most upstream connections open at once",
        check=at_least(1),
        env="VOXGATE_POOL_MAX_SIZE",
        metavar="N",
    )
    pool_min_idle: int | None = setting(
        _POOL["min_idle"],
        integer,
        "idle connections kept open ahead of demand",
        check=at_least(0),
        env="VOXGATE_POOL_MIN_IDLE",
        metavar="N",
        default_text="= pool max size",
    )
    pool_ready_min: int | None = setting(
        _POOL["ready_min"],
        integer,
        "open connections needed before health reports SERVING",
        check=at_least(0),
        env="VOXGATE_POOL_READY_MIN",
        metavar="N",
        default_text="= pool min idle",
    )
    pool_max_concurrent_connects: int = setting(
        _POOL["max_concurrent_connects"],
        integer,
        "connects in flight at once while warming or refilling (a ramp, not a herd)",
        check=at_least(1),
        env="VOXGATE_POOL_MAX_CONCURRENT_CONNECTS",
        metavar="N",
    )
    pool_acquire_timeout_s: float = setting(
        _POOL["acquire_timeout_s"],
        number,
        "longest wait for a free connection before RESOURCE_EXHAUSTED (UNAVAILABLE when not every"
        " connection was lent: the upstream, not capacity)",
        check=above(0),
        env="VOXGATE_POOL_ACQUIRE_TIMEOUT_S",
        metavar=SECONDS,
    )
    pool_max_idle_s: float = setting(
        _POOL["max_idle_s"],
        number,
        "idle connections older than this are replaced, not lent (DashScope drops idle sockets at 60 s)",
        check=above(0),
        env="VOXGATE_POOL_MAX_IDLE_S",
        metavar=SECONDS,
    )
    pool_max_lifetime_s: float = setting(
        _POOL["max_lifetime_s"],
        number,
        f"connections are replaced after this age, less up to {_POOL['lifetime_jitter'] * 100:g} %"
        " random jitter",
        check=above(0),
        env="VOXGATE_POOL_MAX_LIFETIME_S",
        metavar=SECONDS,
    )
    pool_overflow: str = setting(
        _POOL["overflow"],
        stripped,
        "all connections busy: 'wait' (FIFO up to the acquire timeout) or 'overflow' (open a temporary"
        " connection, closed after use)",
        check=one_of(*OVERFLOW_POLICIES),
        env="VOXGATE_POOL_OVERFLOW",
        metavar="POLICY",
    )
    pool_backoff_max_s: float = setting(
        _POOL["backoff_max_s"],
        number,
        "ceiling of the jittered exponential backoff between failed connects; while the upstream rejects"
        " voxgate (credentials, quota) one probe per this interval",
        check=at_least(_POOL["backoff_initial_s"]),
        env="VOXGATE_POOL_BACKOFF_MAX_S",
        metavar=SECONDS,
    )
    pool_leak_warning_s: float = setting(
        _POOL["leak_warning_s"],
        number,
        "warn about a connection lent for longer than this (a stuck stream or a leaked lease)",
        check=above(0),
        env="VOXGATE_POOL_LEAK_WARNING_S",
        metavar=SECONDS,
    )
    connect_timeout_s: float = setting(
        _POOL["connect_timeout_s"],
        number,
        "TCP+TLS+WebSocket handshake limit",
        check=above(0),
        env="VOXGATE_CONNECT_TIMEOUT_S",
        metavar=SECONDS,
    )
    task_start_timeout_s: float = setting(
        10.0,
        number,
        "longest wait for task-started after run-task",
        check=above(0),
        env="VOXGATE_TASK_START_TIMEOUT_S",
        metavar=SECONDS,
    )
    frame_timeout_s: float = setting(
        30.0,
        number,
        "longest upstream silence inside a task before the connection counts as lost",
        check=above(0),
        env="VOXGATE_FRAME_TIMEOUT_S",
        metavar=SECONDS,
    )
    stream_idle_timeout_s: float = setting(
        20.0,
        number,
        "SynthesizeStream: end a stream that sent no text piece for this long (the upstream fails a"
        " task after 23 s without text)",
        check=above(0),
        env="VOXGATE_STREAM_IDLE_TIMEOUT_S",
        metavar=SECONDS,
    )
    stream_max_pieces: int = setting(
        10000,
        integer,
        "SynthesizeStream: most text pieces one stream may send",
        check=at_least(1),
        env="VOXGATE_STREAM_MAX_PIECES",
        metavar="N",
    )
    round_trip_floor_s: float = setting(
        0.5,
        number,
        "a warm connection silent for 4x its slowest round trip (at least this) is pinged, and dead"
        " without a pong within as long: a dead socket fails a task in about a second, not at the"
        " task-start or frame timeout (docs/operations.md#detection-and-recovery)",
        check=above(0),
        env="VOXGATE_ROUND_TRIP_FLOOR_S",
        metavar=SECONDS,
    )
    pool_check_timeout_s: float = setting(
        _POOL["check_timeout_s"],
        number,
        "after a connection died before its task started, every idle one is pinged with this timeout;"
        " also the floor of a connect a caller drives while nothing is connected",
        check=above(0),
        env="VOXGATE_POOL_CHECK_TIMEOUT_S",
        metavar=SECONDS,
    )
    ping_interval_s: float = setting(
        _POOL["ping_interval_s"],
        number,
        "ping each idle connection this often (WebSocket ping)",
        check=above(0),
        env="VOXGATE_PING_INTERVAL_S",
        metavar=SECONDS,
    )
    ping_timeout_s: float = setting(
        _POOL["ping_timeout_s"],
        number,
        "an idle connection whose pong is this late is evicted (dead or half-open peer)",
        check=above(0),
        env="VOXGATE_PING_TIMEOUT_S",
        metavar=SECONDS,
    )
    max_attempts: int = setting(
        3,
        integer,
        "upstream attempts per request (synthesis and generation); retries happen only before"
        " anything was sent to the caller",
        check=at_least(1),
        env="VOXGATE_MAX_ATTEMPTS",
        metavar="N",
    )
    drain_grace_s: float = setting(
        20.0,
        number,
        "on SIGTERM, how long in-flight streams may run before they are cancelled (a second signal"
        " cancels them at once)",
        check=at_least(0),
        env="VOXGATE_DRAIN_GRACE_S",
        metavar=SECONDS,
    )
    max_concurrent_rpcs: int = setting(
        512,
        integer,
        "calls in flight at once; past it a call is refused RESOURCE_EXHAUSTED at once (0 = no limit)",
        check=at_least(0),
        env="VOXGATE_MAX_CONCURRENT_RPCS",
        metavar="N",
    )
    max_request_bytes: int = setting(
        4 * 1024 * 1024,
        integer,
        "largest request message accepted (grpc.max_receive_message_length: room for a 3 MiB inline"
        " image); larger ones are refused RESOURCE_EXHAUSTED before they are decoded",
        check=at_least(1024),
        env="VOXGATE_MAX_REQUEST_BYTES",
        metavar="BYTES",
    )
    write_stall_timeout_s: float = setting(
        5.0,
        number,
        "a write to a caller that stopped reading may wait this long; then the call ends"
        " RESOURCE_EXHAUSTED and its upstream connection is freed (0 = no limit)",
        check=at_least(0),
        env="VOXGATE_WRITE_STALL_TIMEOUT_S",
        metavar=SECONDS,
    )
    salvage_timeout_s: float = setting(
        10.0,
        number,
        "after a caller cancels mid-task, how long the rest of the task may be read (and discarded)"
        " to keep its connection instead of reconnecting (0 = close the connection at once)",
        check=at_least(0),
        env="VOXGATE_SALVAGE_TIMEOUT_S",
        metavar=SECONDS,
    )
    salvage_max_in_flight: int = setting(
        8,
        integer,
        "most cancelled tasks salvaged at once; past it their connections are closed",
        check=at_least(1),
        env="VOXGATE_SALVAGE_MAX_IN_FLIGHT",
        metavar="N",
    )
    task_start_rate: float = setting(
        0.0,
        number,
        "most run-task starts per second of this process (requests, retries, prewarm and refills"
        " together); split the account's rate across workers and replicas (0 = no limit)",
        check=at_least(0),
        env="VOXGATE_TASK_START_RATE",
        metavar="PER_S",
    )
    task_start_burst: int = setting(
        1,
        integer,
        "run-task starts allowed at once above the rate (the token bucket's size)",
        check=at_least(1),
        env="VOXGATE_TASK_START_BURST",
        metavar="N",
    )
    log_level: str = setting(
        "INFO",
        _upper,
        "DEBUG, INFO, WARNING or ERROR",
        check=one_of("DEBUG", "INFO", "WARNING", "ERROR"),
        env="VOXGATE_LOG_LEVEL",
        metavar="LEVEL",
    )
    log_format: str = setting(
        "text",
        _lower,
        "text, or json: one object a line with trace_id and span_id when a span is current",
        check=one_of("text", "json"),
        env="VOXGATE_LOG_FORMAT",
        metavar="FORMAT",
    )
    dev_upstream_rtf: float = setting(
        0.0,
        number,
        "embedded upstream only: real-time factor of the audio pacing (0 = as fast as produced)",
        check=at_least(0),
        env="VOXGATE_DEV_UPSTREAM_RTF",
        metavar="FACTOR",
    )
    http_url: str = setting(
        DEFAULT_HTTP_URL,
        _http_url,
        "DashScope HTTP API base URL (Singapore: https://dashscope-intl.aliyuncs.com/api/v1);"
        " ignored on the embedded upstream",
        env="DASHSCOPE_HTTP_BASE_URL",
        metavar="URL",
    )
    default_generation_model: str | None = setting(
        None,
        stripped,
        "generation model used when a request names none",
        check=non_empty,
        env="VOXGATE_DEFAULT_GENERATION_MODEL",
        metavar="MODEL",
        default_text=f"{DEFAULT_GENERATION_MODEL} (embedded upstream: {EMBEDDED_GENERATION_MODEL})",
    )
    http_limit: int = setting(
        _HTTP["limit"],
        integer,
        "most HTTP connections to the upstream open at once; further calls queue for one",
        check=at_least(1),
        env="VOXGATE_HTTP_LIMIT",
        metavar="N",
    )
    http_limit_per_host: int = setting(
        _HTTP["limit_per_host"],
        integer,
        "the same limit, per host",
        check=at_least(1),
        env="VOXGATE_HTTP_LIMIT_PER_HOST",
        metavar="N",
    )
    http_keepalive_s: float = setting(
        _HTTP["keepalive_s"],
        number,
        "how long an idle HTTP connection is kept for the next call",
        check=above(0),
        env="VOXGATE_HTTP_KEEPALIVE_S",
        metavar=SECONDS,
    )
    http_dns_cache_s: int = setting(
        _HTTP["dns_cache_s"],
        integer,
        "seconds a DNS answer is cached",
        check=at_least(1),
        env="VOXGATE_HTTP_DNS_CACHE_S",
        metavar=SECONDS,
    )
    http_connect_timeout_s: float = setting(
        _HTTP["connect_timeout_s"],
        number,
        "TCP+TLS handshake limit of a new HTTP connection",
        check=above(0),
        env="VOXGATE_HTTP_CONNECT_TIMEOUT_S",
        metavar=SECONDS,
    )
    http_first_byte_timeout_s: float = setting(
        _HTTP["first_byte_timeout_s"],
        number,
        "streams: longest wait for the stream to start, and then between two of its reads",
        check=above(0),
        env="VOXGATE_HTTP_FIRST_BYTE_TIMEOUT_S",
        metavar=SECONDS,
    )
    http_total_timeout_s: float = setting(
        _HTTP["total_timeout_s"],
        number,
        "limit of one whole generation call, waiting for a free connection included; the only limit"
        " of a Generate (not streamed), whose answer comes whole",
        check=above(0),
        env="VOXGATE_HTTP_TOTAL_TIMEOUT_S",
        metavar=SECONDS,
    )
    dev_upstream_token_interval_ms: float = setting(
        20.0,
        number,
        "embedded upstream only: pause between two streamed tokens of the local-echo model",
        check=at_least(0),
        env="VOXGATE_DEV_UPSTREAM_TOKEN_INTERVAL_MS",
        metavar="MS",
    )
    workers: int = setting(
        1,
        integer,
        "server processes sharing the listen port (SO_REUSEPORT), each with its own pool",
        check=at_least(1),
        env="VOXGATE_WORKERS",
        metavar="N",
    )
    workspace: str | None = setting(
        None,
        stripped,
        "DashScope workspace id (the vendor SDK's variable): sent as X-DashScope-WorkSpace on every"
        " WebSocket handshake and HTTP call; unset: the account's default workspace",
        check=non_empty,
        env="DASHSCOPE_WORKSPACE",
        metavar="ID",
        default_text="unset",
    )
    multimodal_model_prefixes: tuple[str, ...] = setting(
        DEFAULT_MULTIMODAL_PREFIXES,
        parse_prefixes,
        "model name prefixes sent to the multimodal endpoint, comma-separated; a request with an image"
        " goes there whatever its model",
        env="VOXGATE_MULTIMODAL_MODEL_PREFIXES",
        metavar="PREFIX,...",
        default_text=",".join(DEFAULT_MULTIMODAL_PREFIXES),
    )
    http_retry_sent_timeouts: bool = setting(
        False,
        boolean,
        "retry a generation whose HTTP timeout struck after the whole request was sent (false: the"
        " upstream may still generate that answer, and bills it, so a retry can bill it twice)",
        env="VOXGATE_HTTP_RETRY_SENT_TIMEOUTS",
        metavar="BOOL",
        default_text="false",
    )
    trace_content_max_chars: int = setting(
        16384,
        integer,
        "with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true: most characters of prompt or"
        " answer text per span attribute; the rest is cut and marked",
        check=at_least(1),
        env="VOXGATE_TRACE_CONTENT_MAX_CHARS",
        metavar="N",
    )
    # --- edge security (docs/security.md; checks in voxgate.rpc.security) ---
    tls_cert_file: str | None = setting(
        None,
        file_path,
        "PEM certificate chain: serve TLS (re-read when it changes)",
        env="VOXGATE_TLS_CERT_FILE",
        default_text="unset: plaintext",
        metavar="FILE",
    )
    tls_key_file: str | None = setting(
        None,
        file_path,
        "PEM private key of the TLS certificate",
        env="VOXGATE_TLS_KEY_FILE",
        default_text="unset",
        metavar="FILE",
    )
    tls_client_ca_file: str | None = setting(
        None,
        file_path,
        "PEM CA: require client certificates it signed (mutual TLS; the subject's"
        " common name is the caller name)",
        env="VOXGATE_TLS_CLIENT_CA_FILE",
        default_text="unset: no client certificates",
        metavar="FILE",
    )
    callers_file: str | None = setting(
        None,
        file_path,
        "TOML file of callers (name, key_sha256, quotas); every call but health"
        " needs 'authorization: Bearer <key>' (re-read when it changes)",
        env="VOXGATE_CALLERS_FILE",
        default_text="unset: no caller keys",
        metavar="FILE",
    )
    auth: str = setting(
        "auto",
        _lower,
        "'none' lets a server with a DashScope key listen beyond loopback without caller"
        " auth (a mesh authenticates); 'auto' refuses to",
        check=one_of(*AUTH_MODES),
        env="VOXGATE_AUTH",
        metavar="MODE",
    )
    health_listen: str | None = setting(
        None,
        _listen_address,
        "a second, plaintext port serving only grpc.health.v1 (for probes when the main port requires TLS)",
        env="VOXGATE_HEALTH_LISTEN",
        default_text="unset: health on the main port only",
        metavar="HOST:PORT",
    )
    api_key: Secret | None = None
    """From ``DASHSCOPE_API_KEY`` only, never a flag (it would show in ``ps``); not a declared setting."""

    def __post_init__(self) -> None:
        validate(self)
        # Checks across settings name the one to change; the pool re-checks its own config.
        if self.pool_min_idle is not None and self.pool_min_idle > self.pool_max_size:
            raise Invalid("pool_min_idle", f"must be <= the pool max size ({self.pool_max_size})")
        if self.pool_ready_min is not None and self.pool_ready_min > self.pool_max_size:
            raise Invalid("pool_ready_min", f"must be <= the pool max size ({self.pool_max_size})")
        problem = security.problems(
            listen=self.listen,
            has_api_key=self.api_key is not None,
            auth=self.auth,
            tls_cert_file=self.tls_cert_file,
            tls_key_file=self.tls_key_file,
            tls_client_ca_file=self.tls_client_ca_file,
            callers_file=self.callers_file,
        )
        if problem is not None:
            raise Invalid(*problem)

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
            check_timeout_s=self.pool_check_timeout_s,
            # Housekeeping often enough that a ping is due on time, at most once a second.
            housekeeping_interval_s=min(1.0, self.ping_interval_s / 2, self.ping_timeout_s / 2),
        )


SETTINGS: tuple[Setting, ...] = declared.declarations(Settings)
"""Every declared setting of ``voxgate serve``, in order."""


def load(environ: Mapping[str, str], flags: Mapping[str, str | None] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ``, overridden by non-None ``flags`` (by field).

    Raises :class:`ConfigError` naming the variable or flag at fault.
    """
    key = environ.get(API_KEY_ENV, "").strip()
    return declared.load(Settings, environ, flags, api_key=Secret(key) if key else None)


def describe(settings: Settings) -> dict[str, object]:
    """Settings as a plain dict for logs; the key appears only as set/unset."""
    out: dict[str, object] = {f.name: getattr(settings, f.name) for f in fields(settings)}
    if settings.embedded_upstream:
        # The DashScope URLs are not used; the embedded upstream logs its loopback URLs as it starts.
        out["ws_url"] = out["http_url"] = EMBEDDED_URL
        out["api_key"] = "unset (embedded upstream)"
    else:
        out["api_key"] = "set"
    out["default_generation_model"] = settings.generation_model
    return out


def markdown_table() -> str:
    """The configuration reference (docs/configuration.md): one row per variable, the API key first."""
    key_row = (
        f"`{API_KEY_ENV}`",
        "—",
        "unset",
        "the DashScope key; unset: serve on the embedded local upstream",
    )
    return declared.markdown_table(SETTINGS, [key_row])


__all__ = ["API_KEY_ENV", "SETTINGS", "ConfigError", "Invalid", "Secret", "Settings", "describe", "load"]

if __name__ == "__main__":
    sys.exit(declared.table_main("python -m voxgate.config", markdown_table(), sys.argv[1:]))
