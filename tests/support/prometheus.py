"""A real Prometheus for the tests: Debian's ``prometheus`` and ``promtool`` (2.42+), found on PATH.

``tools/install-prometheus.sh`` installs them (``make test`` runs it). :class:`Prometheus` runs the
server itself, on ``127.0.0.1`` with a temporary config and storage directory, scraping the given
targets every second; :meth:`Prometheus.query` evaluates PromQL over its HTTP API.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

INSTALL_HINT = "run tools/install-prometheus.sh (make test does): it installs Debian's prometheus package"


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails the test with the fix when missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not on PATH; {INSTALL_HINT}")
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    # Prometheus cannot report a port it picked itself; the window until it binds this one is short.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Prometheus:
    """``prometheus`` scraping ``targets`` (host:port, path /metrics) as job ``job``, every second."""

    def __init__(self, targets: list[str], job: str = "voxgate") -> None:
        self.targets = targets
        self.job = job
        self._dir = tempfile.TemporaryDirectory(prefix="voxgate-prometheus-")
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Prometheus:
        root = Path(self._dir.name)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.targets}]}],
        }
        (root / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (root / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._get("/-/ready") is not None, "Prometheus ready", timeout_s=60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        self._dir.cleanup()

    def log(self) -> str:
        return (Path(self._dir.name) / "prometheus.log").read_text(errors="replace")

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                body: bytes = response.read()
                return body
        except OSError:
            return None

    def _wait(self, condition: Any, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"prometheus exited ({self._process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout_s} s\n{self.log()[-3000:]}")
            time.sleep(0.2)  # polling an external process's HTTP API: nothing to wait on instead

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's samples); raises with Prometheus' error."""
        body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if body is None:
            raise AssertionError(f"query failed: {expr}")
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        result: list[dict[str, Any]] = reply["data"]["result"]
        return result

    def scrapes(self) -> int:
        """Successful scrapes of every target so far (the smallest count)."""
        samples = self.query(f'count_over_time(up{{job="{self.job}"}}[1h])')
        ups = self.query(f'up{{job="{self.job}"}}')
        if len(samples) < len(self.targets) or not all(s["value"][1] == "1" for s in ups):
            return 0
        return min(int(float(s["value"][1])) for s in samples)

    def wait_scrapes(self, count: int, timeout_s: float = 60) -> None:
        self._wait(lambda: self.scrapes() >= count, f"{count} scrapes of {self.targets}", timeout_s)
