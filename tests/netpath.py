"""A real network path for outage tests (tests/netns): the embedded upstream in its own network namespace.

:func:`network_path` creates a namespace and a veth pair with a private /30 between it and the test's own
namespace, starts ``python -m voxgate_dev`` inside it on the /30's far address, and gives the
test the faults it can apply: an iptables DROP blackhole inside that namespace (both
directions), and the link taken down and up. Nothing outside the namespace pair the test made is
touched; teardown deletes it (with its rules and the veth) and stops the upstream, even after a
failure. It needs root, ``ip`` (iproute2) and ``iptables`` on Linux; ``.ci/run`` installs the two
tools. Where a namespace cannot be created the tests skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from harness import API_KEY


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=15)


def _unavailable_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux-only (this is {sys.platform})"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CI runs as root)"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package} (.ci/run does)"
    return None


@dataclass
class NetworkPath:
    """The namespace, the veth pair and the upstream's addresses; the faults a test applies."""

    namespace: str
    host_link: str
    upstream_host: str
    ws_url: str = ""
    http_base_url: str = ""
    _drop_rules: list[list[str]] = field(default_factory=list)

    def in_namespace(self, *args: str) -> None:
        _run("ip", "netns", "exec", self.namespace, *args)

    def blackhole(self) -> None:
        """Every packet to and from the upstream silently dropped (iptables DROP in its namespace)."""
        rules = [
            ["INPUT", "-s", self.host_address, "-j", "DROP"],
            ["OUTPUT", "-d", self.host_address, "-j", "DROP"],
        ]
        for rule in rules:
            self.in_namespace("iptables", "-w", "-I", *rule)
        self._drop_rules = rules

    def heal(self) -> None:
        for rule in self._drop_rules:
            self.in_namespace("iptables", "-w", "-D", *rule)
        self._drop_rules = []

    def link(self, up: bool) -> None:
        _run("ip", "link", "set", "dev", self.host_link, "up" if up else "down")

    @property
    def host_address(self) -> str:
        return self.upstream_host.rsplit(".", 1)[0] + "." + str(int(self.upstream_host.rsplit(".", 1)[1]) - 1)


@contextlib.contextmanager
def network_path() -> Iterator[NetworkPath]:
    """The namespace with the upstream in it, deleted on exit; ``pytest.skip`` where impossible."""
    reason = _unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    namespace, host_link, ns_link = f"vgt{tag}", f"vgh{tag}", f"vgn{tag}"
    # A private /30 of 10.213.0.0/16 (random, so parallel runs do not collide): .1 here, .2 there.
    base = random.randrange(0, 1 << 14) * 4
    prefix = f"10.213.{base >> 8}"
    host_address, upstream_host = f"{prefix}.{(base & 0xFF) + 1}", f"{prefix}.{(base & 0xFF) + 2}"
    created = _run("ip", "netns", "add", namespace, check=False)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {created.stderr.strip()}")
    upstream: subprocess.Popen[str] | None = None
    try:
        _run("ip", "link", "add", host_link, "type", "veth", "peer", "name", ns_link)
        _run("ip", "link", "set", ns_link, "netns", namespace)
        _run("ip", "addr", "add", f"{host_address}/30", "dev", host_link)
        _run("ip", "link", "set", host_link, "up")
        _run("ip", "-n", namespace, "addr", "add", f"{upstream_host}/30", "dev", ns_link)
        _run("ip", "-n", namespace, "link", "set", ns_link, "up")
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        net = NetworkPath(namespace, host_link, upstream_host)
        assert net.host_address == host_address
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_"))}
        env["DASHSCOPE_API_KEY"] = API_KEY
        upstream = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                sys.executable,
                "-m",
                "voxgate_dev",
                "--host",
                upstream_host,
                "--rtf",
                "1.0",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert upstream.stdout is not None
        line = upstream.stdout.readline()  # the one "listening on ws://..." line, or EOF if it died
        assert "listening on ws://" in line, f"the embedded upstream did not start: {line!r}"
        net.ws_url = line.rsplit(" ", 1)[1].strip()
        port = net.ws_url.split(":")[2].split("/")[0]
        net.http_base_url = f"http://{upstream_host}:{port}/api/v1"
        yield net
    finally:
        if upstream is not None:
            upstream.kill()
            upstream.wait(timeout=10)
            if upstream.stdout is not None:
                upstream.stdout.close()
        # Deleting the namespace takes its iptables rules and the veth pair (both ends) with it.
        _run("ip", "netns", "del", namespace, check=False)
        _run("ip", "link", "del", host_link, check=False)
