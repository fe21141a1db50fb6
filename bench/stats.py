"""Per-request samples and what a benchmark level makes of them: percentiles, rates, costs.

Pure functions over plain data, so the numbers in ``docs/benchmarks.md`` can be
checked by unit tests without running anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

STATUS_OK = "OK"
PCM_BYTES_PER_SECOND = 16000 * 2
"""The bench asks for 16 kHz 16-bit mono PCM: 32,000 bytes per second of audio."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as the load generator saw it."""

    first_packet_ms: float
    """Request issued (before any pool borrow) to the first audio bytes in the caller's hands; -1: none."""
    total_ms: float
    audio_bytes: int
    status: str
    """``OK``, a gRPC status name, or an exception class name."""
    pool_wait_ms: float = -1.0
    """voxgate's summary: time waiting for a pooled connection (-1 where there is no summary)."""
    hop_ms: float = -1.0
    """voxgate's summary: its own first-packet delay minus the upstream's (time spent inside voxgate)."""
    reused: bool = False
    """voxgate's summary: the connection had run a task before."""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK and self.first_packet_ms >= 0

    def to_row(self) -> list[Any]:
        return [
            round(self.first_packet_ms, 3),
            round(self.total_ms, 3),
            self.audio_bytes,
            self.status,
            round(self.pool_wait_ms, 3),
            round(self.hop_ms, 3),
            self.reused,
        ]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Sample:
        return cls(
            float(row[0]), float(row[1]), int(row[2]), str(row[3]), float(row[4]), float(row[5]), bool(row[6])
        )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks; NaN if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q / 100 * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True, slots=True)
class Costs:
    """What a level cost, measured outside the load generator's timing."""

    wall_s: float
    client_cpu_s: float
    """CPU of the load-generator process (for (c) and (d) it is the whole client side)."""
    gateway_cpu_s: float = 0.0
    """CPU of the voxgate server process(es); 0 where there is none."""
    upstream_cpu_s: float = 0.0
    client_rss_kib: int = 0
    """Peak resident memory of the load generator."""
    gateway_rss_kib: int = 0
    """Peak resident memory of the voxgate server process(es), summed over workers."""
    upstream_connects: int = 0
    """Connections the upstream accepted during the level."""
    pool_leases: int = 0
    """voxgate's StatsService: leases during the level (one worker's view with --workers)."""
    pool_warm_leases: int = 0
    """... of which paid no connect."""
    pool_peak_utilization: float = math.nan
    """voxgate's StatsService: most connections in use at once / pool size."""


@dataclass(frozen=True, slots=True)
class LevelResult:
    """One (variant, concurrency) cell of the tables."""

    variant: str
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    streams_per_s: float
    audio_s_per_s: float
    client_cpu_ms_per_stream: float
    gateway_cpu_ms_per_stream: float
    upstream_cpu_ms_per_stream: float
    """The upstream emulator's CPU (it shares the machine): context for saturation, not a variant's cost."""
    client_rss_mib: float
    gateway_rss_mib: float
    reuse: float
    """Share of requests that opened no upstream connection, counted at the upstream."""
    pool_wait_p99_ms: float
    """voxgate's own view, from the per-call summaries: p99 wait for a pooled connection."""
    voxgate_reused: float
    """voxgate's own view: share of calls whose connection had already run a task (NaN: no summaries)."""
    pool_reuse_ratio: float
    """voxgate's StatsService: share of the level's leases that paid no connect (NaN: no voxgate)."""
    pool_peak_utilization: float
    hop_p50_ms: float
    hop_p99_ms: float
    error_kinds: dict[str, int]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    @property
    def cpu_ms_per_stream(self) -> float:
        """Everything on the caller's side of the upstream: load generator plus gateway."""
        return self.client_cpu_ms_per_stream + self.gateway_cpu_ms_per_stream

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LevelResult:
        return cls(**data)


def summarize(variant: str, concurrency: int, samples: Sequence[Sample], costs: Costs) -> LevelResult:
    """Reduce one level's samples and costs to its row. CPU and rates are per completed stream."""
    good = [s for s in samples if s.ok]
    first_packets = [s.first_packet_ms for s in good]
    completed = max(len(good), 1)
    kinds: dict[str, int] = {}
    for sample in samples:
        if not sample.ok:
            kinds[sample.status] = kinds.get(sample.status, 0) + 1
    summarized = [s for s in good if s.pool_wait_ms >= 0]
    waits = [s.pool_wait_ms for s in summarized]
    hops = [s.hop_ms for s in good if s.hop_ms >= 0]
    wall_s = costs.wall_s if costs.wall_s > 0 else math.nan
    return LevelResult(
        variant=variant,
        concurrency=concurrency,
        requests=len(samples),
        errors=len(samples) - len(good),
        p50_ms=percentile(first_packets, 50),
        p99_ms=percentile(first_packets, 99),
        streams_per_s=len(good) / wall_s,
        audio_s_per_s=sum(s.audio_bytes for s in good) / PCM_BYTES_PER_SECOND / wall_s,
        client_cpu_ms_per_stream=costs.client_cpu_s * 1000 / completed,
        gateway_cpu_ms_per_stream=costs.gateway_cpu_s * 1000 / completed,
        upstream_cpu_ms_per_stream=costs.upstream_cpu_s * 1000 / completed,
        client_rss_mib=costs.client_rss_kib / 1024,
        gateway_rss_mib=costs.gateway_rss_kib / 1024,
        reuse=1 - costs.upstream_connects / len(samples) if samples else math.nan,
        pool_wait_p99_ms=percentile(waits, 99),
        voxgate_reused=sum(s.reused for s in summarized) / len(summarized) if summarized else math.nan,
        pool_reuse_ratio=costs.pool_warm_leases / costs.pool_leases if costs.pool_leases else math.nan,
        pool_peak_utilization=costs.pool_peak_utilization,
        hop_p50_ms=percentile(hops, 50),
        hop_p99_ms=percentile(hops, 99),
        error_kinds=kinds,
    )
