"""The one shared ``aiohttp.ClientSession`` of a voxgate process, sized and timed by config.

:func:`open_session` at start, ``await session.close()`` at shutdown (``App`` does both).
Never a session per request: its ``TCPConnector`` keeps connections alive between calls,
so a request pays no TCP+TLS handshake once the pool is warm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from voxgate import tcp
from voxgate.generation.client import request_sent_trace_config


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Connector size and timeouts. Checks its own invariants, like ``aiohttp.ClientTimeout``."""

    limit: int = 100
    """Most connections open at once, over all hosts; further requests queue for one."""
    limit_per_host: int = 100
    keepalive_s: float = 30.0
    """How long an idle connection is kept for reuse."""
    dns_cache_s: int = 10
    connect_timeout_s: float = 5.0
    """TCP + TLS handshake limit of one new connection."""
    first_byte_timeout_s: float = 60.0
    """Longest wait for a stream to start, and then between two of its reads."""
    total_timeout_s: float = 300.0
    """Limit of a whole call, queueing for a connection included (the SDK's default is 300 s);
    the only limit of an answer that is not streamed, which comes whole once generated."""

    def __post_init__(self) -> None:
        for name in ("limit", "limit_per_host", "dns_cache_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("keepalive_s", "connect_timeout_s", "first_byte_timeout_s", "total_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")

    def timeout(self) -> aiohttp.ClientTimeout:
        # sock_read starts when the request is sent: it bounds the wait for the first byte,
        # then every gap between reads of a stream.
        return aiohttp.ClientTimeout(
            total=self.total_timeout_s,
            sock_connect=self.connect_timeout_s,
            sock_read=self.first_byte_timeout_s,
        )


def open_session(
    config: HttpConfig, trace_configs: Sequence[aiohttp.TraceConfig] = ()
) -> aiohttp.ClientSession:
    """A session with its own connector; the caller closes it. Call inside the running loop.

    ``trace_configs`` subscribe to the session's signals (telemetry: connection reused or opened).
    """
    connector = aiohttp.TCPConnector(
        limit=config.limit,
        limit_per_host=config.limit_per_host,
        keepalive_timeout=config.keepalive_s,
        ttl_dns_cache=config.dns_cache_s,
        socket_factory=tcp.socket_factory,  # keepalive + TCP_USER_TIMEOUT (voxgate.tcp)
    )
    # trust_env off: a proxy from the environment must not silently reroute the API key.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=config.timeout(),
        trust_env=False,
        # request_sent_trace_config: GenerationClient tells a timeout before from one after sending.
        trace_configs=[request_sent_trace_config(), *trace_configs],
    )
