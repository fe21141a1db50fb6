"""Kernel help for upstream sockets: TCP keepalive and ``TCP_USER_TIMEOUT``, where the platform has them.

voxgate notices a dead upstream in round trips (docs/operations.md#detection-and-recovery), but
only where it waits for an answer. The kernel covers the rest: keepalive probes find a silent
peer under an idle socket, and ``TCP_USER_TIMEOUT`` (Linux) fails a socket whose sent data has
gone unacknowledged for that long, so a write into a blackhole errors out in bounded time instead
of after the default ~15 minutes of retransmissions. Both the synthesizer's WebSockets
(:mod:`voxgate.speech.connection`) and the generation session's connector
(:mod:`voxgate.generation.session`) use :func:`tune`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

log = logging.getLogger(__name__)

KEEPALIVE_IDLE_S = 15
"""Idle time before the first keepalive probe."""
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3
"""Unanswered probes before the kernel drops the socket: an idle dead peer is found in ~30 s."""
USER_TIMEOUT_S = 15
"""Longest time sent data may stay unacknowledged before the kernel fails the socket."""


def tune(sock: Any) -> None:
    """Set keepalive and the user timeout on a TCP socket (a ``socket.socket`` or asyncio's
    ``TransportSocket``); options this platform lacks are skipped, and errors only logged."""
    if sock is None:
        return
    options: list[tuple[int, int, int]] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    # Linux names the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, KEEPALIVE_IDLE_S),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL_S),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
        (getattr(socket, "TCP_USER_TIMEOUT", None), USER_TIMEOUT_S * 1000),
    ):
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError as exc:  # not TCP (a Unix socket in a test), or refused by the platform
            log.debug("could not set TCP option %s=%s: %s", option, value, exc)


def socket_factory(addr_info: tuple[Any, ...]) -> socket.socket:
    """An aiohttp ``TCPConnector(socket_factory=...)``: a plain non-blocking socket, tuned."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    with contextlib.suppress(OSError):
        sock.setblocking(False)
    tune(sock)
    return sock
