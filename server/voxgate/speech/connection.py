"""One WebSocket connection to the CosyVoice service, running one task at a time.

The adapter between :mod:`voxgate.speech.protocol` (which decides what to send and
what a frame means) and the ``websockets`` library (which moves the bytes).
Open one with :meth:`Synthesizer.connect`, run tasks with :meth:`Synthesizer.run`,
and hand it back to the pool only if the last task reached ``FINISHED``.
:class:`SynthesizerConnector` is how the pool opens, probes and closes them.

Detection in round trips (docs/operations.md#detection-and-recovery): each connection keeps
the round trips it has shown (its handshake, its pongs, its task starts). Waiting for
``task-started``, or for the next frame of a task, longer than :data:`PATIENCE_ROUND_TRIPS`
times the slowest of them (at least ``round_trip_floor_s``) makes it send a ping: a pong means
the peer is alive and merely slow, so the full timeouts still apply; no pong within the same
patience means the socket is dead, and the task fails in about two patiences, not ten seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from voxgate import __version__, tcp
from voxgate.speech.protocol import ProtocolError, SynthesisTask, TaskFinished, TaskStarted, TaskState
from voxgate.speech.text_input import TextReader

log = logging.getLogger(__name__)

_ORDINARY_CLOSE_CODES = (1001, 1012, 1013)

PATIENCE_ROUND_TRIPS = 4
"""A silence this many times the slowest round trip a connection has shown is worth a ping."""

USER_AGENT = f"voxgate/{__version__}; python/{platform.python_version()}; platform/{platform.system()}"


class SpeechConnectionError(Exception):
    """Base of the failures of an upstream connection that are not ``task-failed``."""


class ConnectionLost(SpeechConnectionError):
    """The socket closed, or went silent, before the task ended."""


class Unanswered(ConnectionLost):
    """The peer went silent (no task-started, or no next frame) and then missed a pong."""


class HandshakeRejected(SpeechConnectionError):
    """The service refused the WebSocket upgrade (401/403: our credentials)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"upstream refused the WebSocket handshake with HTTP {status}")
        self.status = status

    @property
    def is_auth_failure(self) -> bool:
        return self.status in (401, 403)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to open synthesizer connections."""

    url: str
    api_key: str = field(repr=False)
    connect_timeout_s: float = 5.0
    task_start_timeout_s: float = 10.0
    """The SDK waits 10 s for task-started (docs/protocol.md#task-started)."""
    frame_timeout_s: float = 30.0
    """Longest silence tolerated inside a task before the connection counts as lost."""
    round_trip_floor_s: float = 0.5
    """Shortest patience before a silent connection is pinged, and the pong awaited (see above)."""
    close_timeout_s: float = 2.0
    receive_queue_frames: int = 16
    """Frames buffered ahead of a slow reader; past it TCP pushes back on the upstream."""
    workspace: str = ""
    """Sent as ``X-DashScope-WorkSpace`` in the handshake when set, as the SDK does."""


class Synthesizer:
    """A connected socket; not safe for concurrent tasks (the pool guarantees that)."""

    def __init__(self, ws: ClientConnection, endpoint: Endpoint, handshake_s: float | None = None) -> None:
        self._ws = ws
        self._endpoint = endpoint
        self._busy = False
        self._broken = False
        self._round_trips_s: deque[float] = deque([] if handshake_s is None else [handshake_s], maxlen=8)
        """The latest round trips this connection has shown (handshake, pongs, task starts)."""
        self.unresponsive = False
        """It went silent before a task started and then missed a pong: the peer is gone."""

    @classmethod
    async def connect(cls, endpoint: Endpoint) -> Synthesizer:
        """Open and upgrade a socket. Raises :class:`HandshakeRejected` or ``OSError``."""
        started = asyncio.get_running_loop().time()
        try:
            ws = await connect(
                endpoint.url,
                additional_headers={
                    "Authorization": f"Bearer {endpoint.api_key}",
                    **({"X-DashScope-WorkSpace": endpoint.workspace} if endpoint.workspace else {}),
                },
                user_agent_header=USER_AGENT,
                compression=None,  # the SDK negotiates none (docs/protocol.md#handshake-and-headers)
                proxy=None,
                open_timeout=endpoint.connect_timeout_s,
                # Keepalive is the pool's (it pings idle connections and evicts on a missing
                # pong); inside a task, frame_timeout_s catches a silent peer.
                ping_interval=None,
                close_timeout=endpoint.close_timeout_s,
                max_queue=endpoint.receive_queue_frames,
            )
        except InvalidStatus as exc:
            raise HandshakeRejected(exc.response.status_code) from None
        tcp.tune(ws.transport.get_extra_info("socket"))  # keepalive + TCP_USER_TIMEOUT
        return cls(ws, endpoint, handshake_s=asyncio.get_running_loop().time() - started)

    @property
    def is_open(self) -> bool:
        """False once the socket closed or a task left it in an unknown state."""
        return not self._broken and self._ws.state is State.OPEN

    @property
    def close_reason(self) -> str:
        """How the socket closed, for logs and errors: the peer's close code and reason, if any."""
        received = self._ws.protocol.close_rcvd
        if received is None:
            return "no close frame (connection dropped)" if self._ws.state is State.CLOSED else "still open"
        reason = f" {received.reason!r}" if received.reason else ""
        return f"close code {received.code}{reason}"

    @property
    def refusal(self) -> str | None:
        """If the upstream closed this socket with a close frame that reads as a refusal, why.

        Going away (1001), restarting (1012) or try-again-later (1013) are ordinary closes,
        as is a dropped TCP connection; any other code is taken as a refusal (the service's
        code for quota or arrears is undocumented: docs/protocol.md#close-codes).
        """
        received = self._ws.protocol.close_rcvd
        if received is None or received.code in _ORDINARY_CLOSE_CODES:
            return None
        return self.close_reason

    async def ping(self) -> None:
        """Send a WebSocket ping and return when its pong arrives (the pool bounds the wait).

        Raises :class:`ConnectionLost` if the socket is closed or closes meanwhile.
        """
        sent_at = asyncio.get_running_loop().time()
        try:
            pong = await self._ws.ping()
            await pong
        except ConnectionClosed as exc:
            raise ConnectionLost(f"upstream connection closed: {_describe(exc)}") from None
        self._round_trips_s.append(asyncio.get_running_loop().time() - sent_at)

    @property
    def patience_s(self) -> float:
        """How long a silence may last before it is worth a ping (the task-start timeout when this
        connection has shown no round trip)."""
        full_s = self._endpoint.task_start_timeout_s
        if not self._round_trips_s:
            return full_s
        shown_s = PATIENCE_ROUND_TRIPS * max(self._round_trips_s)
        return min(full_s, max(self._endpoint.round_trip_floor_s, shown_s))

    async def _answers_ping(self, timeout_s: float) -> bool:
        """Whether a pong comes back within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.ping()
        except (TimeoutError, ConnectionLost):
            return False
        return True

    async def close(self) -> None:
        self._broken = True
        await self._ws.close()

    async def run(self, task: SynthesisTask, text: str) -> AsyncGenerator[bytes, None]:
        """Run ``task`` with ``text``, yielding audio as each frame arrives.

        Returns normally only after ``task-finished`` (``task.state`` is then
        ``FINISHED``). Raises :class:`~voxgate.speech.protocol.TaskFailure`,
        :class:`ConnectionLost` or :class:`~voxgate.speech.protocol.ProtocolError`;
        after any of those, or if the caller stops iterating early, the socket
        is marked broken and must be closed, not reused.
        """
        if self._busy:
            raise ProtocolError("a task is already running on this connection")
        self._busy = True
        try:
            await self._send(task.run_task())
            await self._await_started(task)
            # Like the SDK's call(): all text in one continue-task, then finish-task
            # at once, so the 23 s inter-message limit can never trip (docs/protocol.md#timing-limits).
            await self._send(task.continue_task(text))
            await self._send(task.finish_task())
            with _SilenceWatchdog(
                self._endpoint.frame_timeout_s, self.patience_s, self._answers_ping
            ) as watchdog:
                while True:
                    frame = await watchdog.guard(self._recv())
                    if isinstance(frame, bytes):
                        yield task.receive_audio(frame).data
                    elif isinstance(task.receive_text(frame), TaskFinished):
                        return
        except Unanswered:
            self.unresponsive = True
            raise
        finally:
            self._busy = False
            if task.state is not TaskState.FINISHED:
                self._broken = True

    async def salvage(self, task: SynthesisTask) -> int:
        """Read the rest of ``task``, abandoned by its caller after finish-task, up to ``task-finished``.

        Audio is discarded (its byte count is returned); every event still goes through the
        task's checks, so a frame of any other task fails the salvage (docs/protocol.md#connection-reuse).
        Once ``task-finished`` arrived the connection is clean and may be lent again, which
        costs the upstream no reconnect. Raises like :meth:`run`; the socket then stays broken.
        The caller bounds the time it may take.
        """
        if self._busy or task.state is not TaskState.FINISHING or self._ws.state is not State.OPEN:
            raise ProtocolError(f"cannot salvage a task in state {task.state.value}")
        self._busy = True
        discarded = 0
        try:
            while True:
                frame = await self._recv()
                if isinstance(frame, bytes):
                    discarded += len(task.receive_audio(frame).data)
                elif isinstance(task.receive_text(frame), TaskFinished):
                    self._broken = self._ws.state is not State.OPEN
                    return discarded
        finally:
            self._busy = False

    async def run_stream(self, task: SynthesisTask, text: TextReader) -> AsyncGenerator[bytes, None]:
        """Like :meth:`run`, but the text arrives in pieces: each batch ``text`` hands out goes
        upstream as its own continue-task while audio flows back; its end sends finish-task.

        Also raises what ``text.next_batch()`` raises (the caller's input was rejected).
        """
        if self._busy:
            raise ProtocolError("a task is already running on this connection")
        self._busy = True
        try:
            await self._send(task.run_task())
            await self._await_started(task)
            with _SilenceWatchdog(
                self._endpoint.frame_timeout_s, self.patience_s, self._answers_ping
            ) as watchdog:
                sender = asyncio.create_task(self._send_pieces(task, text, watchdog), name="voxgate-text-in")
                try:
                    while True:
                        frame = await watchdog.guard(self._recv())
                        if isinstance(frame, bytes):
                            yield task.receive_audio(frame).data
                        elif isinstance(task.receive_text(frame), TaskFinished):
                            return
                finally:
                    sender.cancel()
        except Unanswered:
            self.unresponsive = True
            raise
        finally:
            self._busy = False
            if task.state is not TaskState.FINISHED:
                self._broken = True

    async def _send_pieces(self, task: SynthesisTask, text: TextReader, watchdog: _SilenceWatchdog) -> None:
        """Forward text as it comes, then finish-task; any failure interrupts the receive loop."""
        try:
            while (batch := await text.next_batch()) is not None:
                await self._send(task.continue_task(batch))
                # The upstream may stay silent until a sentence is complete: waiting for the
                # caller's text is not upstream silence.
                watchdog.restart()
            await self._send(task.finish_task())
            watchdog.restart()
        except ConnectionLost:
            # The receive loop meets the same close, after any frame sent before it (a
            # task-failed says more than the close does).
            return
        except Exception as exc:  # handed to the receive loop, which raises it
            watchdog.interrupt(exc)

    async def _await_started(self, task: SynthesisTask) -> None:
        loop = asyncio.get_running_loop()
        full_s, patience_s = self._endpoint.task_start_timeout_s, self.patience_s
        sent_at = loop.time()
        started = loop.create_task(self._receive_started(task))
        try:
            await asyncio.wait({started}, timeout=patience_s)
            if not started.done():
                # Silent past what this connection has shown: is the peer still there?
                if not await self._answers_ping(patience_s) and not started.done():
                    raise Unanswered(
                        f"no task-started within {loop.time() - sent_at:.2g}s and no pong within"
                        f" {patience_s:.2g}s: the connection is dead"
                    )
                await asyncio.wait({started}, timeout=max(0.0, sent_at + full_s - loop.time()))
            if not started.done():
                raise ConnectionLost(f"no task-started within {full_s:.3g}s")
            started.result()
            self._round_trips_s.append(loop.time() - sent_at)
        finally:
            if not started.done():
                started.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await started

    async def _receive_started(self, task: SynthesisTask) -> None:
        while True:
            frame = await self._recv()
            if isinstance(frame, bytes):
                raise ProtocolError("audio before task-started")
            if isinstance(task.receive_text(frame), TaskStarted):
                return

    async def _send(self, frame: str) -> None:
        try:
            await self._ws.send(frame)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"upstream connection closed while sending: {_describe(exc)}") from None

    async def _recv(self) -> str | bytes:
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise ConnectionLost(f"upstream connection closed mid-task: {_describe(exc)}") from None


class SynthesizerConnector:
    """The pool's :class:`~voxgate.pool.Connector` for synthesizers to one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def connect(self) -> Synthesizer:
        return await Synthesizer.connect(self.endpoint)

    async def close(self, conn: Synthesizer) -> None:
        await conn.close()

    def is_open(self, conn: Synthesizer) -> bool:
        return conn.is_open

    async def ping(self, conn: Synthesizer) -> None:
        await conn.ping()

    def is_fatal(self, error: Exception) -> bool:
        """Only a refused handshake for our credentials: retrying cannot fix it."""
        return isinstance(error, HandshakeRejected) and error.is_auth_failure

    def unresponsive(self, conn: Synthesizer) -> bool:
        return conn.unresponsive

    def refusal(self, conn: Synthesizer) -> str | None:
        return conn.refusal


class _SilenceWatchdog:
    """Fails a task's receive loop once the upstream sent nothing for ``limit_s`` while we waited,
    or, sooner, once a silence of ``patience_s`` was followed by a missed pong (``probe``).

    ``asyncio.timeout`` around every frame pushes a timer onto the loop's heap and
    cancels it again: ~7 us per frame, two frames per audio chunk, about 5 % of
    voxgate's CPU per stream (docs/benchmarks.md). Here a frame costs two clock reads;
    one timer wakes at most twice per silence and re-arms itself from the latest
    activity. Time spent outside :meth:`guard` (the caller writing audio to a slow
    gRPC reader) never counts as upstream silence. :meth:`interrupt` ends the loop with
    another task's exception (the text sender of a stream) the same way.
    """

    def __init__(self, limit_s: float, patience_s: float, probe: Callable[[float], Awaitable[bool]]) -> None:
        self._limit_s = limit_s
        self._patience_s = patience_s
        self._probe = probe
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._waiting_since: float | None = None
        self._probed_since: float | None = None
        self._probing: asyncio.Task[None] | None = None
        self._expired: Exception | None = None
        self._interrupted: Exception | None = None
        self._timer = self._loop.call_at(self._loop.time() + min(limit_s, patience_s), self._check)

    def __enter__(self) -> _SilenceWatchdog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self._probing is not None:
            self._probing.cancel()

    async def guard(self, receive: Awaitable[str | bytes]) -> str | bytes:
        """Await ``receive``; raise :class:`ConnectionLost` if the silence limit passes first,
        or the exception given to :meth:`interrupt`."""
        if self._interrupted is not None:
            if isinstance(receive, Coroutine):
                receive.close()
            raise self._interrupted
        self._waiting_since = self._loop.time()
        try:
            return await receive
        except asyncio.CancelledError:
            # Our own cancel (and nobody else's too): the silence limit passed.
            if self._expired is not None and self._task is not None and self._task.uncancel() == 0:
                raise self._expired from None
            raise
        finally:
            self._waiting_since = None

    def restart(self) -> None:
        """Count the upstream's silence from now (we just sent it something to answer)."""
        if self._waiting_since is not None:
            self._waiting_since = self._loop.time()

    def interrupt(self, exc: Exception) -> None:
        """End the receive loop with ``exc``: at once if it is waiting, else at its next frame."""
        if self._interrupted is None:
            self._interrupted = exc
            if self._waiting_since is not None:
                self._expire(exc)

    def _expire(self, error: Exception) -> None:
        if self._expired is None and self._task is not None:
            self._expired = error
            self._task.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        since = self._waiting_since
        if since is not None and now - since >= self._limit_s:
            self._expire(ConnectionLost(f"upstream sent nothing for {self._limit_s:.3g}s"))
            return
        wake_at = (since if since is not None else now) + self._limit_s
        if since is not None and self._probed_since != since:
            if now - since >= self._patience_s:
                self._probed_since = since
                self._probing = self._loop.create_task(self._ask(since))
            else:
                wake_at = min(wake_at, since + self._patience_s)
        elif since is None:
            wake_at = min(wake_at, now + self._patience_s)
        self._timer = self._loop.call_at(wake_at, self._check)

    async def _ask(self, since: float) -> None:
        if not await self._probe(self._patience_s) and self._waiting_since == since:
            self._expire(
                Unanswered(
                    f"upstream went silent mid-task for {self._loop.time() - since:.2g}s and missed a pong"
                )
            )


def _describe(exc: ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "no close frame (connection dropped)"
    reason = f" {exc.rcvd.reason!r}" if exc.rcvd.reason else ""
    return f"close code {exc.rcvd.code}{reason}"
