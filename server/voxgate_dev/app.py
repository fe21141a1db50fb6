"""The local upstream as one aiohttp application: wiring, lifecycle and dev endpoints.

``DevUpstream(options)``; ``await start()``; point clients at ``ws_url`` /
``http_base_url``; ``await stop()``. :func:`serve` does the same for the command line.
Protocol endpoints (the CosyVoice WebSocket, the DashScope HTTP generation API) add
their routes to :attr:`DevUpstream.app` before ``start()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from voxgate.speech.protocol import WS_PATH

from .auth import error_response
from .espeak import NATIVE_SAMPLE_RATE, Voice, get_engine
from .faults import Faults, FaultSwitch
from .generation import HTTP_API_PATH, GenerationEndpoint
from .options import UpstreamOptions
from .speech_ws import CLOSE_TIMEOUT_S, SpeechEndpoint
from .stats import Stats

DEV_STATS_PATH = "/_dev/stats"
DEV_FAULTS_PATH = "/_dev/faults"
RECORDED_REQUESTS = 64


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What a client sent: the WebSocket handshake or an HTTP call, as the upstream saw it."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names as sent (look them up case-insensitively with :meth:`header`)."""
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


class DevUpstream:
    """DashScope-compatible upstream on loopback, with real speech and fault injection."""

    def __init__(self, options: UpstreamOptions) -> None:
        self.options = options
        self._faults = FaultSwitch(options.faults, seed=options.seed)
        self._stats = Stats()
        self._engine = get_engine()
        self._tts = SpeechEndpoint(
            options=options, faults=self._faults, stats=self._stats, engine=self._engine
        )
        self.recorded: deque[RecordedRequest] = deque(maxlen=RECORDED_REQUESTS)
        """The last requests, oldest first, dev endpoints aside: what clients really sent."""
        self.app = web.Application(middlewares=[self._record])
        """The one application; add routes before :meth:`start`."""
        self._generation = GenerationEndpoint(options=options, faults=self._faults, stats=self._stats)
        self._tts.add_routes(self.app)
        self._generation.add_routes(self.app)
        self.app.router.add_get(DEV_STATS_PATH, self._get_stats)
        self.app.router.add_get(DEV_FAULTS_PATH, self._get_faults)
        self.app.router.add_put(DEV_FAULTS_PATH, self._put_faults)
        # Open WebSockets would hold the shutdown for its whole timeout: close them first.
        self.app.on_shutdown.append(self._close_connections)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopped = False

    async def start(self) -> None:
        """Bind and serve. Afterwards :attr:`port`, :attr:`ws_url` and :attr:`http_base_url` are valid."""
        if self._runner is not None or self._stopped:
            raise RuntimeError("a DevUpstream starts once; make a new one to start again")
        # Load espeak-ng now, so the first task's first packet does not pay for it.
        await self._engine.synthesize("ready", Voice(), NATIVE_SAMPLE_RATE)
        runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S + 1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.options.host, self.options.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = _bound_port(runner)

    async def stop(self) -> None:
        """Stop listening, close every connection (open SDK pool sockets included), release the port."""
        runner, self._runner = self._runner, None
        self._stopped = True
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DevUpstream not started")
        return self._port

    @property
    def ws_url(self) -> str:
        """What ``dashscope.base_websocket_api_url`` must be set to."""
        return f"ws://{self._url_host()}:{self.port}{WS_PATH}"

    @property
    def http_base_url(self) -> str:
        """What ``dashscope.base_http_api_url`` must be set to."""
        return f"http://{self._url_host()}:{self.port}{HTTP_API_PATH}"

    def set_faults(self, faults: Faults) -> None:
        """Switch faults at runtime; tasks already running keep theirs."""
        self._faults.set(faults)

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (see :class:`~voxgate_dev.stats.Stats`)."""
        if self._runner is not None and self._runner.server is not None:
            self._generation.count_open(self._runner.server.connections)
        return self._stats.snapshot()

    def _url_host(self) -> str:
        host = self.options.host
        if host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if host == "::":
            return "[::1]"
        return f"[{host}]" if ":" in host else host

    async def _close_connections(self, _app: web.Application) -> None:
        self._generation.stop()
        await self._tts.close_all()

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/_dev/"):
            body = await request.read() if request.can_read_body else b""  # cached for the handler
            self.recorded.append(RecordedRequest(request.method, request.path, dict(request.headers), body))
        return await handler(request)

    async def _get_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    async def _put_faults(self, request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object of Faults fields")
            faults = Faults.from_json(body)
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            return error_response(400, "InvalidParameter", str(exc))
        self.set_faults(faults)
        return web.json_response(faults.to_json())


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError(f"no TCP address bound: {runner.addresses!r}")


async def serve(options: UpstreamOptions) -> None:
    """Run until cancelled, SIGINT or SIGTERM. Prints one line with the WS URL to stdout once bound."""
    upstream = DevUpstream(options)
    await upstream.start()
    try:
        print(f"voxgate dev-upstream listening on {upstream.ws_url}", flush=True)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Only possible in the main thread on Unix; elsewhere cancellation stops us.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stopped.set)
                installed.append(signum)
        try:
            await stopped.wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
    finally:
        await upstream.stop()


__all__ = ["DevUpstream", "RecordedRequest", "serve"]
