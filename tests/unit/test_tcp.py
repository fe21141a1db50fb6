"""Kernel help on upstream sockets: keepalive and TCP_USER_TIMEOUT are really set (read back)."""

from __future__ import annotations

import socket

from voxgate import tcp


def read_back(sock: socket.socket) -> dict[str, int]:
    options = {"SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"):
        if hasattr(socket, name):
            options[name] = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
    return options


def test_tune_sets_keepalive_and_the_user_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        tcp.tune(sock)
        options = read_back(sock)
    wanted = {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": tcp.KEEPALIVE_IDLE_S,
        "TCP_KEEPINTVL": tcp.KEEPALIVE_INTERVAL_S,
        "TCP_KEEPCNT": tcp.KEEPALIVE_PROBES,
        "TCP_USER_TIMEOUT": tcp.USER_TIMEOUT_S * 1000,
    }
    # Every option this platform has (all of them on Linux) holds the value voxgate chose.
    assert options == {name: value for name, value in wanted.items() if name in options}
    assert "SO_KEEPALIVE" in options


def test_the_aiohttp_socket_factory_returns_a_tuned_non_blocking_socket() -> None:
    info = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0]
    with tcp.socket_factory(info) as sock:
        assert not sock.getblocking()
        assert read_back(sock)["SO_KEEPALIVE"] == 1


def test_a_socket_that_is_not_tcp_is_left_alone() -> None:
    left, right = socket.socketpair()  # AF_UNIX: the TCP options do not apply, nothing raises
    with left, right:
        tcp.tune(left)
    tcp.tune(None)
