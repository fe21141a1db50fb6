"""The StatsService servicer: a snapshot of each pool, with reuse ratio and utilization.

Reuse ratio and utilization are the two numbers that say whether a pool is sized
right: Alibaba's published targets for DashScope WebSocket pools are reuse above
95 % and 60-80 % utilization at peak. The peak is tracked by :class:`PeakInUse`,
a pool listener, since the pool itself keeps only totals and the current state.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from voxgate.pool import LeaseGranted, PoolEvent, PoolStats
from voxgate.rpc.admission import Overload
from voxgate.rpc.quotas import UsageSnapshot
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc

Context = grpc.aio.ServicerContext[stats_pb2.GetStatsRequest, stats_pb2.GetStatsResponse]
StatsSource = Callable[[], PoolStats]


class PeakInUse:
    """A pool listener remembering the most connections lent at once; :meth:`observe` the pool first."""

    def __init__(self) -> None:
        self.peak = 0
        self._in_use: Callable[[], int] | None = None

    def observe(self, in_use: Callable[[], int]) -> None:
        """``in_use`` counts the connections lent now; it runs on every lease, so keep it cheap."""
        self._in_use = in_use

    def on_event(self, event: PoolEvent) -> None:
        if isinstance(event, LeaseGranted) and self._in_use is not None:
            self.peak = max(self.peak, self._in_use())


class StatsService(stats_pb2_grpc.StatsServiceServicer):
    """Serves ``voxgate.stats.v1.StatsService``; :meth:`add_pool` each pool at start."""

    def __init__(self) -> None:
        self._pools: dict[str, tuple[StatsSource, PeakInUse]] = {}
        self._callers: Callable[[], list[UsageSnapshot]] = list
        self.overload: Overload | None = None

    def add_callers(self, usage: Callable[[], list[UsageSnapshot]]) -> None:
        """Report each authenticated caller's use (voxgate.rpc.quotas.Ledger.snapshot)."""
        self._callers = usage

    def add_pool(self, name: str, stats: StatsSource, peak: PeakInUse) -> None:
        self._pools[name] = (stats, peak)

    async def GetStats(
        self, request: stats_pb2.GetStatsRequest, context: Context
    ) -> stats_pb2.GetStatsResponse:
        return stats_pb2.GetStatsResponse(
            pools=[pool_stats(name, stats(), peak.peak) for name, (stats, peak) in self._pools.items()],
            callers=[caller_usage(usage) for usage in self._callers()],
            overload=overload_stats(self.overload) if self.overload is not None else None,
        )


def pool_stats(name: str, stats: PoolStats, peak_in_use: int) -> stats_pb2.PoolStats:
    peak_in_use = max(peak_in_use, stats.in_use)
    return stats_pb2.PoolStats(
        name=name,
        idle=stats.idle,
        in_use=stats.in_use,
        connecting=stats.connecting,
        pending=stats.pending,
        max_size=stats.max_size,
        peak_in_use=peak_in_use,
        created=stats.created,
        connect_failures=stats.connect_failures,
        leases=stats.leases,
        warm_leases=stats.warm_leases,
        reused_leases=stats.reused_leases,
        queued_leases=stats.queued_leases,
        timeouts=stats.timeouts,
        evicted=stats.evicted,
        reuse_ratio=stats.reuse_ratio,
        utilization=stats.in_use / stats.max_size,
        peak_utilization=peak_in_use / stats.max_size,
        checking=stats.checking,
        overflow_in_use=stats.overflow_in_use,
        overflow_leases=stats.overflow_leases,
        serving=stats.serving,
    )


def caller_usage(usage: UsageSnapshot) -> stats_pb2.CallerUsage:
    return stats_pb2.CallerUsage(
        name=usage.name,
        active_streams=usage.active_streams,
        requests=usage.requests,
        characters=usage.characters,
        generation_requests=usage.generation_requests,
        characters_last_minute=usage.characters_last_minute,
        generation_requests_last_minute=usage.generation_requests_last_minute,
        refused=usage.refused,
    )


def overload_stats(overload: Overload) -> stats_pb2.OverloadStats:
    return stats_pb2.OverloadStats(
        in_flight=overload.in_flight,
        max_concurrent_rpcs=overload.max_concurrent_rpcs,
        refused=overload.refused,
        writes_stalled=overload.writes_stalled,
        salvaged=overload.salvaged,
        salvage_closed=overload.salvage_closed,
        salvages_in_flight=overload.salvages_in_flight,
        rate_limited_waits=overload.rate_limited_waits,
    )
