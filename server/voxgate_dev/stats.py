"""Counters of the local upstream, cheap enough to bump on every frame.

Tests and benchmarks read them through ``DevUpstream.stats()`` or ``GET /_dev/stats``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Stats:
    """Monotonic counters, except the gauges ``connections_open``, ``handshakes_in_flight``,
    ``generation_connections_open`` and ``generations_streaming``. ``connections_*`` count
    WebSocket connections; ``generation_connections_*`` count the TCP connections that carried
    generation requests."""

    connections_opened: int = 0
    connections_open: int = 0
    handshakes_rejected: int = 0
    handshakes_in_flight: int = 0
    """WS upgrades being answered right now (from the request to the upgrade or refusal)."""
    handshakes_in_flight_max: int = 0
    """The most upgrades ever answered at once: what a client's connect cap must bound."""
    connections_closed_after_handshake: int = 0
    connections_stalled: int = 0
    tasks_started: int = 0
    tasks_finished: int = 0
    tasks_failed: int = 0
    tasks_cancelled: int = 0
    invalid_action_errors: int = 0
    audio_bytes_sent: int = 0
    audio_frames_sent: int = 0
    connections_dropped: int = 0
    idle_timeouts: int = 0
    text_gap_timeouts: int = 0
    pings_received: int = 0
    generation_connections_opened: int = 0
    generation_connections_open: int = 0
    generations_started: int = 0
    generations_streaming: int = 0
    generations_finished: int = 0
    generations_failed: int = 0
    generations_cancelled: int = 0
    """The client went away before the answer was complete."""
    generation_tokens_sent: int = 0

    def handshake_started(self) -> None:
        self.handshakes_in_flight += 1
        self.handshakes_in_flight_max = max(self.handshakes_in_flight_max, self.handshakes_in_flight)

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
