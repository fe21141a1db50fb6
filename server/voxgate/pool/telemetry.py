"""Pool events as spans, span events and metrics; pool gauges read from its stats.

The pool imports no OpenTelemetry: it calls its listeners at every decision and
:class:`PoolTelemetry` is one of them. Events arrive synchronously in the task
that caused them, so the current span is the request's:

* a granted (or refused) lease becomes a ``voxgate.pool.acquire`` child span covering
  the wait, with the lease's facts and the pool's idle/used/pending/max right then;
* an eviction becomes an event on the current span (the borrow check during an
  acquire, a discarded connection at release) and a count by reason;
* opened connections, leases and reuse are counted; gauges report the pool's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation

from voxgate.observability import names
from voxgate.observability.telemetry import Telemetry
from voxgate.pool import (
    ConnectionEvicted,
    ConnectionOpened,
    LeaseGranted,
    LeaseHeldLong,
    LeaseRefused,
    PoolEvent,
    PoolStats,
)


class PoolTelemetry:
    """A pool listener. Pass :meth:`on_event` in the pool's ``listeners``, then :meth:`observe` the pool."""

    def __init__(self, telemetry: Telemetry, *, pool_name: str) -> None:
        self._tracer = telemetry.tracer
        self._traces = telemetry.traces
        self._meter = telemetry.meter
        self._pool = {names.POOL_NAME: pool_name}
        self._stats: Callable[[], PoolStats] | None = None
        meter = telemetry.meter
        self._wait = meter.create_histogram(
            names.METRIC_POOL_WAIT, unit="ms", description="time a request waited for a pooled connection"
        )
        self._create_time = meter.create_histogram(
            names.METRIC_POOL_CREATE_TIME, unit="ms", description="time to open an upstream connection"
        )
        self._created = meter.create_counter(
            names.METRIC_POOL_CREATED, unit="{connection}", description="upstream connections opened"
        )
        self._reused = meter.create_counter(
            names.METRIC_POOL_REUSED,
            unit="{lease}",
            description="leases of a connection that had already run a task",
        )
        self._evicted = meter.create_counter(
            names.METRIC_POOL_EVICTED, unit="{connection}", description="connections closed, by reason"
        )
        self._leases = meter.create_counter(
            names.METRIC_POOL_LEASES,
            unit="{lease}",
            description="connections lent; warm=true paid no connect (reuse ratio = warm / all)",
        )
        self._refused = meter.create_counter(
            names.METRIC_POOL_REFUSED,
            unit="{lease}",
            description="acquires that got no connection, by reason",
        )
        self._held_long = meter.create_counter(
            names.METRIC_POOL_HELD_LONG,
            unit="{lease}",
            description="leases out longer than the leak warning (a stuck stream or a leak)",
        )

    def observe(self, stats: Callable[[], PoolStats]) -> None:
        """Read ``stats`` for the acquire spans' snapshot and the idle/used/pending/max gauges."""
        self._stats = stats
        meter = self._meter
        meter.create_observable_gauge(
            names.METRIC_POOL_COUNT,
            [self._observe_count],
            unit="{connection}",
            description="open connections by state (idle, used)",
        )
        meter.create_observable_gauge(
            names.METRIC_POOL_MAX, [self._observe_max], unit="{connection}", description="most connections"
        )
        meter.create_observable_gauge(
            names.METRIC_POOL_PENDING,
            [self._observe_pending],
            unit="{request}",
            description="requests waiting for a connection",
        )
        meter.create_observable_gauge(
            names.METRIC_POOL_SERVING,
            [self._observe_serving],
            unit="1",
            description="1 while the pool can serve (warm, upstream accepting us), else 0",
        )
        meter.create_observable_gauge(
            names.METRIC_POOL_REJECTED,
            [self._observe_rejected],
            unit="1",
            description="1 while the upstream refuses our key or quota (the breaker probes slowly), else 0",
        )

    def on_event(self, event: PoolEvent) -> None:
        if isinstance(event, LeaseGranted):
            self._granted(event)
        elif isinstance(event, ConnectionEvicted):
            self._evicted.add(1, {**self._pool, names.POOL_EVICTION_REASON: event.reason})
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event(
                    names.EVENT_EVICTED,
                    {
                        names.POOL_EVICTION_REASON: event.reason,
                        names.POOL_CONNECTION_AGE_MS: event.age_s * 1000,
                    },
                )
        elif isinstance(event, ConnectionOpened):
            self._created.add(1, self._pool)
            self._create_time.record(event.connect_s * 1000, self._pool)
        elif isinstance(event, LeaseRefused):
            self._refused.add(1, {**self._pool, names.POOL_REFUSAL_REASON: event.reason})
            self._acquire_span(
                event.wait_s,
                {names.POOL_REFUSAL_REASON: event.reason},
                error=f"no connection: {event.reason}",
            )
        elif isinstance(event, LeaseHeldLong):
            self._held_long.add(1, self._pool)
        # ConnectionFailed: the failing request's span and the pool's log say it.
        # HealthChanged: the voxgate.pool.serving gauge and the log say it.

    def _granted(self, event: LeaseGranted) -> None:
        self._wait.record(event.wait_s * 1000, self._pool)
        self._leases.add(1, {**self._pool, names.POOL_WARM: event.warm, names.POOL_OVERFLOW: event.overflow})
        if event.reused:
            self._reused.add(1, self._pool)
        self._acquire_span(
            event.wait_s,
            {
                names.POOL_REUSED: event.reused,
                names.POOL_WARM: event.warm,
                names.POOL_CONNECTION_AGE_MS: event.age_s * 1000,
                names.POOL_QUEUED: event.queued,
                names.POOL_OVERFLOW: event.overflow,
            },
        )

    def _acquire_span(self, wait_s: float, facts: dict[str, str | bool | float], error: str = "") -> None:
        """A span for the acquire that just ended, back-dated by the time it waited."""
        if not self._traces or not trace.get_current_span().is_recording():
            return
        end_ns = time.time_ns()
        span = self._tracer.start_span(names.SPAN_POOL_ACQUIRE, start_time=end_ns - int(wait_s * 1e9))
        span.set_attributes({**self._pool, names.POOL_WAIT_MS: wait_s * 1000, **facts, **self._snapshot()})
        if error:
            span.set_status(trace.StatusCode.ERROR, error)
        span.end(end_time=end_ns)

    def _snapshot(self) -> dict[str, int]:
        if self._stats is None:
            return {}
        stats = self._stats()
        return {
            names.POOL_IDLE: _idle(stats),
            names.POOL_USED: _used(stats),
            names.POOL_PENDING: stats.pending,
            names.POOL_MAX: stats.max_size,
        }

    # -- gauges ------------------------------------------------------------------------------

    def _observe_count(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._stats is None:
            return ()
        stats = self._stats()
        return (
            Observation(_idle(stats), {**self._pool, names.POOL_CONNECTION_STATE: "idle"}),
            Observation(_used(stats), {**self._pool, names.POOL_CONNECTION_STATE: "used"}),
        )

    def _observe_max(self, _options: CallbackOptions) -> Iterable[Observation]:
        return () if self._stats is None else (Observation(self._stats().max_size, self._pool),)

    def _observe_pending(self, _options: CallbackOptions) -> Iterable[Observation]:
        return () if self._stats is None else (Observation(self._stats().pending, self._pool),)

    def _observe_serving(self, _options: CallbackOptions) -> Iterable[Observation]:
        return () if self._stats is None else (Observation(int(self._stats().serving), self._pool),)

    def _observe_rejected(self, _options: CallbackOptions) -> Iterable[Observation]:
        return () if self._stats is None else (Observation(int(self._stats().rejected), self._pool),)


def _idle(stats: PoolStats) -> int:
    """Idle connections, those out for a keepalive ping included."""
    return stats.idle + stats.checking


def _used(stats: PoolStats) -> int:
    """Connections lent to requests, temporary overflow connections included."""
    return stats.in_use + stats.overflow_in_use
