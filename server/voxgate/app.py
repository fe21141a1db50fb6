"""Wiring and lifecycle: start the upstream pool and the shared HTTP session, serve gRPC, drain, stop.

``App.start`` returns once the server listens (health NOT_SERVING until the pool
is warm); ``App.stop`` drains: health NOT_SERVING and new calls refused at once,
in-flight streams given ``drain_grace_s`` to finish, then everything closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from typing import TYPE_CHECKING

import aiohttp
import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voxgate.config import API_KEY_ENV, ConfigError, Settings
from voxgate.generation.client import GenerationClient
from voxgate.generation.servicer import GenerationService
from voxgate.generation.session import open_session
from voxgate.generation.telemetry import GenerationTelemetry
from voxgate.generation.v1 import generation_pb2, generation_pb2_grpc
from voxgate.observability.telemetry import Telemetry
from voxgate.observability.telemetry import disabled as telemetry_off
from voxgate.pool import HealthChanged, Pool, PoolEvent, PoolListener, log_event
from voxgate.pool.telemetry import PoolTelemetry
from voxgate.rpc.admission import AdmissionInterceptor, Overload, overload_metrics, server_options
from voxgate.rpc.auth import Charge, Pricing
from voxgate.rpc.edge import Edge
from voxgate.rpc.interceptor import RpcInterceptor
from voxgate.rpc.retry import RetryPolicy
from voxgate.rpc.shutdown import InFlight
from voxgate.speech.connection import Endpoint, Synthesizer, SynthesizerConnector
from voxgate.speech.protocol import MAX_TEXT_CHARS_PER_CONTINUE, weighted_length
from voxgate.speech.ratelimit import TaskStartLimiter
from voxgate.speech.salvage import Salvager
from voxgate.speech.servicer import SpeechService
from voxgate.speech.telemetry import SpeechTelemetry
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate.speech.validation import Defaults
from voxgate.stats.servicer import PeakInUse, StatsService
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc
from voxgate.voice.servicer import VoiceService
from voxgate.voice.telemetry import VoiceTelemetry
from voxgate.voice.v1 import voice_pb2, voice_pb2_grpc

if TYPE_CHECKING:
    # Only for annotations: the embedded upstream (numpy, espeak-ng, lameenc) is imported in
    # start() when no API key is set, so a production process never loads it.
    from voxgate_dev import DevUpstream

log = logging.getLogger(__name__)

SPEECH_SERVICE = speech_pb2.DESCRIPTOR.services_by_name["SpeechService"].full_name
STATS_SERVICE = stats_pb2.DESCRIPTOR.services_by_name["StatsService"].full_name
TTS_POOL = "tts"
GENERATION_SERVICE = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
VOICE_SERVICE = voice_pb2.DESCRIPTOR.services_by_name["VoiceService"].full_name
LIVENESS_SERVICE = "liveness"
STOP_NOW_TIMEOUT_S = 5.0
"""On a stop at once, how long cancelled calls may take to return their leases and answer."""
"""Health service name that is SERVING while the process serves at all, whatever the upstream
does: for liveness probes, which must not restart pods because DashScope rejects the key."""


def _synthesis_charge(request: speech_pb2.SynthesizeRequest) -> Charge:
    """Characters as billed; a text the servicer will refuse (empty, too long) costs nothing."""
    characters = weighted_length(request.text) if request.text.strip() else 0
    return Charge(characters=characters if characters <= MAX_TEXT_CHARS_PER_CONTINUE else 0)


PRICING: dict[str, Pricing] = {
    f"/{SPEECH_SERVICE}/Synthesize": _synthesis_charge,
    f"/{GENERATION_SERVICE}/Generate": lambda _request: Charge(generation=True),
    f"/{GENERATION_SERVICE}/GenerateStream": lambda _request: Charge(generation=True),
    # A Speak is one generation request; its speech is streamed text, counted as a running stream
    # but not (yet) against characters_per_minute, like SynthesizeStream's (docs/security.md).
    f"/{VOICE_SERVICE}/Speak": lambda _request: Charge(generation=True),
}
"""What each call costs against its caller's rate quotas (voxgate.rpc.quotas); characters as billed."""


class App:
    """One voxgate server process. ``await start()``, then ``await stop()``."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry if telemetry is not None else telemetry_off()
        self.port = 0
        self.dev_upstream: DevUpstream | None = None
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self.health_port = 0
        self.edge = Edge()
        self._pool: Pool[Synthesizer] | None = None
        self._health = health.aio.HealthServicer()
        self._speech: SpeechService | None = None
        self._stats = StatsService()
        self._generation: GenerationService | None = None
        self._voice: VoiceService | None = None
        self._http: aiohttp.ClientSession | None = None
        self._health_updates: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._stop_now = asyncio.Event()
        self._cutting = False
        self._in_flight = InFlight()
        self.overload = Overload(max_concurrent_rpcs=settings.max_concurrent_rpcs)
        self._salvager: Salvager | None = None

    @property
    def pool(self) -> Pool[Synthesizer]:
        if self._pool is None:
            raise RuntimeError("app not started")
        return self._pool

    async def start(self) -> None:
        settings = self.settings
        self.edge = Edge.load(
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
            client_ca_file=settings.tls_client_ca_file,
            callers_file=settings.callers_file,
        )
        log.info("%s", self.edge.describe())
        endpoint, http_url = await self._endpoint()
        generation_telemetry = GenerationTelemetry(
            self.telemetry, upstream_url=http_url, content_max_chars=settings.trace_content_max_chars
        )
        # One session for the whole process (never one per request); closed in stop().
        self._http = open_session(
            settings.http_config(),
            [generation_telemetry.trace_config()] if self.telemetry.enabled else [],
        )
        generation_client = GenerationClient(
            self._http,
            base_url=http_url,
            api_key=endpoint.api_key,
            workspace=settings.workspace or "",
            retry_sent_timeouts=settings.http_retry_sent_timeouts,
        )
        self._generation = GenerationService(
            generation_client,
            default_model=settings.generation_model,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
            telemetry=generation_telemetry,
            multimodal_prefixes=settings.multimodal_model_prefixes,
        )
        # Pool facts reach telemetry and the stats service through the pool's listeners.
        peak = PeakInUse()
        listeners: list[PoolListener] = [log_event, self._on_pool_event, peak.on_event]
        pool_telemetry = PoolTelemetry(self.telemetry, pool_name=TTS_POOL) if self.telemetry.enabled else None
        if pool_telemetry is not None:
            listeners.append(pool_telemetry.on_event)
        self._pool = Pool(SynthesizerConnector(endpoint), config=settings.pool_config(), listeners=listeners)
        pool = self._pool
        peak.observe(lambda: pool.in_use)
        if pool_telemetry is not None:
            pool_telemetry.observe(self._pool.stats)
        self._stats.add_pool(TTS_POOL, self._pool.stats, peak)
        self._salvager = Salvager(
            self._pool,
            timeout_s=settings.salvage_timeout_s,
            max_in_flight=settings.salvage_max_in_flight,
            overload=self.overload,
        )
        speech_defaults = Defaults(model=settings.default_model, voice=settings.default_voice)
        self._speech = SpeechService(
            self._pool,
            speech_defaults,
            max_attempts=settings.max_attempts,
            telemetry=SpeechTelemetry(self.telemetry),
            overload=self.overload,
            write_stall_timeout_s=settings.write_stall_timeout_s,
            salvager=self._salvager,
            task_starts=TaskStartLimiter(settings.task_start_rate, settings.task_start_burst, self.overload),
            stream_idle_timeout_s=settings.stream_idle_timeout_s,
            stream_max_pieces=settings.stream_max_pieces,
        )
        self._voice = VoiceService(
            generation_client,  # Speak's generation half: the same client, session and workspace
            self._pool,
            default_model=settings.generation_model,
            speech_defaults=speech_defaults,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
            speech_retry=self._speech.retry_policy,
            generation_telemetry=generation_telemetry,
            speech_telemetry=self._speech.telemetry,
            telemetry=VoiceTelemetry(self.telemetry),
            idle_timeout_s=settings.stream_idle_timeout_s,
        )
        self._speech.cutting = self._in_flight.cutting_current
        self._stats.overload = self.overload
        if self.telemetry.enabled:
            overload_metrics(self.telemetry.meter, self.overload)
        # Telemetry outermost, so refused calls get a span and a count too; with telemetry off
        # there is no RpcInterceptor at all.
        interceptors: list[grpc.aio.ServerInterceptor] = (
            [RpcInterceptor(self.telemetry)] if self.telemetry.enabled else []
        )
        # Then the caller's key (a refused key costs no admission slot), then admission.
        auth = self.edge.interceptor(
            metered_services=(SPEECH_SERVICE, GENERATION_SERVICE, VOICE_SERVICE), pricing=PRICING
        )
        if auth is not None:
            interceptors.append(auth)
        self._stats.add_callers(self.edge.ledger.snapshot)
        interceptors.append(AdmissionInterceptor(self.overload, exempt=(STATS_SERVICE,)))
        # SO_REUSEPORT only for --workers: otherwise a second server on the same port
        # would quietly take half of the connections instead of failing to start.
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.so_reuseport", int(settings.workers > 1)),
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                *server_options(settings.max_concurrent_rpcs),
            ],
        )
        # Tracked, so that a stop at once can answer each running call with a clear status.
        track = self._in_flight.track
        speech_pb2_grpc.add_SpeechServiceServicer_to_server(
            track(self._speech, _service(SPEECH_SERVICE)), server
        )
        stats_pb2_grpc.add_StatsServiceServicer_to_server(track(self._stats, _service(STATS_SERVICE)), server)
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(
            track(self._generation, _service(GENERATION_SERVICE)), server
        )
        voice_pb2_grpc.add_VoiceServiceServicer_to_server(track(self._voice, _service(VOICE_SERVICE)), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                SPEECH_SERVICE,
                STATS_SERVICE,
                GENERATION_SERVICE,
                VOICE_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        self.port = self.edge.listen(server, settings.listen)
        if self.port == 0:
            raise OSError(f"VOXGATE_LISTEN: cannot listen on {settings.listen}")
        if settings.health_listen is not None:
            await self._serve_health(settings.health_listen)
        for service in ("", SPEECH_SERVICE, VOICE_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Generation needs no warm-up: the session connects on demand and keeps connections alive.
        for service in (GENERATION_SERVICE, LIVENESS_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        self._server = server
        self._pool.start()

    async def _serve_health(self, address: str) -> None:
        """Health only, in plaintext: kubelet's gRPC probes cannot speak TLS (docs/security.md)."""
        # Shared by --workers like the main port (each worker's health reports its own pool).
        health_server = grpc.aio.server(options=[("grpc.so_reuseport", int(self.settings.workers > 1))])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, health_server)
        self.health_port = health_server.add_insecure_port(address)
        if self.health_port == 0:
            raise OSError(f"VOXGATE_HEALTH_LISTEN: cannot listen on {address}")
        await health_server.start()
        self._health_server = health_server

    @property
    def health_address(self) -> str | None:
        """The plaintext health-only address (VOXGATE_HEALTH_LISTEN), if one is served."""
        if self.settings.health_listen is None or not self.health_port:
            return None
        return f"{self.settings.health_listen.rpartition(':')[0]}:{self.health_port}"

    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def _endpoint(self) -> tuple[Endpoint, str]:
        """The WebSocket endpoint and the HTTP base URL, of DashScope or of the embedded upstream."""
        settings = self.settings
        if settings.api_key is None:
            # The embedded default: a loopback upstream with a key only we know.
            api_key = "sk-local-" + secrets.token_hex(16)
            try:
                from voxgate_dev import DevUpstream, UpstreamOptions
            except ImportError as exc:  # an install without the demo extra (the production image)
                raise ConfigError(
                    API_KEY_ENV,
                    "is not set, and the embedded local upstream it would serve on is not"
                    f" installed ({exc}): set {API_KEY_ENV}, or install the demo extra"
                    " (pip install 'voxgate[demo]'; container image: docker build --target demo)",
                ) from exc

            self.dev_upstream = DevUpstream(
                UpstreamOptions(
                    api_key=api_key,
                    rtf=settings.dev_upstream_rtf,
                    token_interval_ms=settings.dev_upstream_token_interval_ms,
                )
            )
            await self.dev_upstream.start()
            url, http_url = self.dev_upstream.ws_url, self.dev_upstream.http_base_url
            log.info(
                "DASHSCOPE_API_KEY is not set: serving on the embedded local upstream at %s and %s",
                url,
                http_url,
            )
        else:
            api_key, url, http_url = settings.api_key.reveal(), settings.ws_url, settings.http_url
            log.info("upstream: %s and %s", url, http_url)
        endpoint = Endpoint(
            url=url,
            api_key=api_key,
            connect_timeout_s=settings.connect_timeout_s,
            task_start_timeout_s=settings.task_start_timeout_s,
            frame_timeout_s=settings.frame_timeout_s,
            workspace=settings.workspace or "",
            round_trip_floor_s=settings.round_trip_floor_s,
        )
        return endpoint, http_url

    def _on_pool_event(self, event: PoolEvent) -> None:
        # Readiness follows the pool: SERVING once warm, NOT_SERVING while the upstream
        # rejects voxgate (credentials, quota), SERVING again once a connection holds.
        if isinstance(event, HealthChanged) and not self._stopping:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if event.serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            task = asyncio.get_running_loop().create_task(self._set_health(status))
            self._health_updates.add(task)
            task.add_done_callback(self._health_updates.discard)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for service in ("", SPEECH_SERVICE, VOICE_SERVICE):  # Speak speaks through the pool too
            await self._health.set(service, status)

    async def stop(self) -> None:
        """Drain and close. Safe to call more than once."""
        if self._stopping:
            return
        self._stopping = True
        grace_s = self.settings.drain_grace_s
        log.info("draining: up to %.1fs for in-flight calls", grace_s)
        await self._health.enter_graceful_shutdown()
        if self._speech is not None:
            self._speech.draining = True
        if self._generation is not None:
            self._generation.draining = True
        if self._voice is not None:
            self._voice.draining = True
        if self._health_updates:
            await asyncio.gather(*self._health_updates, return_exceptions=True)
        if self._server is not None:
            await self._drain(self._server, grace_s)
        if self._health_server is not None:
            await self._health_server.stop(0)
        if self._salvager is not None:
            await self._salvager.close()
        if self._pool is not None:
            await self._pool.close()
        if self._http is not None:
            await self._http.close()
        if self.dev_upstream is not None:
            await self.dev_upstream.stop()
        # Last, so the spans and metrics of the drain are exported too.
        await asyncio.to_thread(self.telemetry.shutdown)
        log.info("stopped")

    def stop_now(self) -> None:
        """End a drain at once: in-flight calls are cancelled instead of given the rest of the grace."""
        if not self._stop_now.is_set():
            log.warning("stopping now: cancelling in-flight calls")
            self._stop_now.set()

    async def _drain(self, server: grpc.aio.Server, grace_s: float) -> None:
        cut = asyncio.ensure_future(self._cut(server, grace_s))
        try:
            # Awaited here, not in a task: the shutdown starts in this step. Started a loop step
            # later, a call sent on seeing NOT_SERVING could land half-way and end CANCELLED
            # instead of being refused UNAVAILABLE (seen in tests/faults/test_drain.py).
            # gRPC's own cut comes later than ours (_cut), which answers each call first.
            await server.stop(grace_s + STOP_NOW_TIMEOUT_S)
        finally:
            if self._cutting:
                await cut
            else:
                cut.cancel()

    async def _cut(self, server: grpc.aio.Server, grace_s: float) -> None:
        """At the end of the grace, or at once on a second signal, cut the calls still running."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self._stop_now.wait()
        self._cutting = True
        # Our calls first, so each caller reads why (a stream: how much audio it got); then a
        # zero grace makes gRPC cancel whatever is left (health watches, reflection).
        await self._in_flight.cancel_all(timeout_s=STOP_NOW_TIMEOUT_S)
        await server.stop(0)


def _service(full_name: str) -> ServiceDescriptor:
    return descriptor_pool.Default().FindServiceByName(full_name)


async def serve(settings: Settings, telemetry: Telemetry | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain; a second signal cuts the drain short.

    Prints the listening address on stdout.
    """
    app = App(settings, telemetry)
    loop = asyncio.get_running_loop()
    try:
        await app.start()
        if app.health_address is not None:
            print(f"voxgate health (plaintext, grpc.health.v1 only) on {app.health_address}", flush=True)
        print(f"voxgate listening on {app.address}", flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        # Like most servers: the first signal drains, a second one stops at once.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, app.stop_now)
    finally:
        await app.stop()
