"""The CosyVoice duplex WebSocket endpoint of the local upstream
(docs/protocol.md#cosyvoice-duplex-websocket).

:class:`SpeechEndpoint` answers the upgrade (faults, auth) and runs one
:class:`~voxgate_dev.speech_session.Session` per connection.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from voxgate.speech.protocol import WS_PATH

from .auth import error_body, error_response, is_authorized, unauthorized
from .espeak import SpeechEngine
from .faults import Faults, FaultSwitch
from .options import UpstreamOptions
from .speech_session import CLOSE_POLICY_VIOLATION, CLOSE_TIMEOUT_S, MAX_CLOSE_REASON, Session
from .stats import Stats

__all__ = ["CLOSE_TIMEOUT_S", "SpeechEndpoint"]


class SpeechEndpoint:
    """The WS route. ``DevUpstream`` adds it to the app and calls :meth:`close_all` on stop."""

    def __init__(
        self, *, options: UpstreamOptions, faults: FaultSwitch, stats: Stats, engine: SpeechEngine
    ) -> None:
        self.options = options
        self.faults = faults
        self.stats = stats
        self.engine = engine
        self._sessions: set[Session] = set()
        self._stopping = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        # The SDK uses no trailing slash; the vendor docs' samples do: accept both
        # (docs/protocol.md#endpoint).
        app.router.add_get(WS_PATH, self.handle)
        app.router.add_get(WS_PATH + "/", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.stats.handshake_started()
        try:
            faults = self.faults.for_connection()
            ws = await self._upgrade(request, faults)
        finally:
            self.stats.handshakes_in_flight -= 1
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        session = Session(self, ws, request)
        self._sessions.add(session)
        self.stats.connections_opened += 1
        self.stats.connections_open += 1
        try:
            if self._stopping.is_set():  # upgraded while close_all() ran
                await session.shutdown()
            elif faults.close_after_handshake:
                self.stats.connections_closed_after_handshake += 1
                reason = f"{faults.fail_code}: {faults.fail_message}".encode()[:MAX_CLOSE_REASON]
                await ws.close(code=CLOSE_POLICY_VIOLATION, message=reason)
            elif faults.stall_after_handshake:
                session.stall()
                await session.run()
            else:
                await session.run()
        finally:
            self._sessions.discard(session)
            self.stats.connections_open -= 1
        return ws

    async def _upgrade(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """Answer the upgrade: a prepared WebSocket, or the HTTP refusal to return."""
        if faults.connect_delay_ms:
            # Interruptible, so stop() need not wait for a delayed handshake.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), faults.connect_delay_ms / 1000)
        if self._stopping.is_set():
            return error_response(503, "ServiceUnavailable", "local upstream is stopping")
        if faults.reject_handshake_status is not None:
            self.stats.handshakes_rejected += 1
            status = faults.reject_handshake_status
            code, message = error_body(status)
            return error_response(status, code, message)
        # Auth is checked before the upgrade: the vendor answers HTTP 401
        # (docs/protocol.md#handshake-and-headers).
        if not is_authorized(request, self.options.api_key):
            self.stats.handshakes_rejected += 1
            return unauthorized()

        # autoping off: we answer pings ourselves, to count them and to let them keep a
        # connection alive; no compression: the SDK offers none (docs/protocol.md#handshake-and-headers).
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        return ws

    async def close_all(self) -> None:
        """Refuse new connections; close every open one (close frame 1001, then TCP abort
        if the peer does not answer within :data:`CLOSE_TIMEOUT_S`)."""
        self._stopping.set()
        sessions = list(self._sessions)
        if sessions:
            await asyncio.gather(*(session.shutdown() for session in sessions))
