"""The series the autoscalers query (the chart's KEDA query, docs/deploy.md's adapter rule) are the
ones voxgate's pool actually exports, under the names Prometheus gives OpenTelemetry metrics."""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from helm_chart import VALUE_SETS, render
from voxgate.observability import names
from voxgate.observability.telemetry import Telemetry
from voxgate.pool import PoolStats
from voxgate.pool.telemetry import PoolTelemetry

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _prometheus(name: str, unit: str = "") -> str:
    """OpenTelemetry -> Prometheus name of a gauge or a label (the OTLP compatibility rules: every
    character outside [a-zA-Z0-9_] becomes "_"; an annotation unit in braces adds no suffix, "1"
    adds _ratio). Only the units the pool gauges use are handled."""
    base = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if unit == "" or re.fullmatch(r"\{[^}]*\}", unit):
        return base
    assert unit == "1", f"unit {unit!r}: extend this translation"
    return base + "_ratio"


def _exported() -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    """What the pool's gauges export for one snapshot: name -> (unit, {attributes: value})."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(tracer=trace.NoOpTracer(), meter=provider.get_meter("test"), metrics=True)
    stats = PoolStats(
        idle=3, in_use=9, connecting=0, checking=1, pending=3, overflow_in_use=0, max_size=16,
        created=16, connect_failures=0, leases=100, warm_leases=100, reused_leases=90, queued_leases=5,
        timeouts=0, overflow_leases=0, evicted={}, ready=True, serving=True, closing=False,
    )  # fmt: skip
    PoolTelemetry(telemetry, pool_name="tts").observe(lambda: stats)
    data = reader.get_metrics_data()
    assert data is not None
    exported: dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = {
                    tuple(sorted((k, str(v)) for k, v in point.attributes.items())): float(point.value)  # type: ignore[union-attr]
                    for point in metric.data.data_points
                }
                exported[metric.name] = (metric.unit or "", points)
    provider.shutdown()
    return exported


def test_the_autoscalers_query_the_pools_real_series() -> None:
    exported = _exported()
    count_unit, count = exported[names.METRIC_POOL_COUNT]
    max_unit, maximum = exported[names.METRIC_POOL_MAX]
    pending_unit, pending = exported[names.METRIC_POOL_PENDING]
    state = _prometheus(names.POOL_CONNECTION_STATE)
    used_series = f'{_prometheus(names.METRIC_POOL_COUNT, count_unit)}{{{state}="used"'
    series = {
        used_series,
        _prometheus(names.METRIC_POOL_MAX, max_unit),
        _prometheus(names.METRIC_POOL_PENDING, pending_unit),
    }
    assert series == {
        'voxgate_pool_connection_count{voxgate_pool_connection_state="used"',
        "voxgate_pool_connection_max",
        "voxgate_pool_connection_pending_requests",
    }
    query = render(VALUE_SETS["keda"]).get("ScaledObject")["spec"]["triggers"][1]["metadata"]["query"]
    adapter_rule = DEPLOY_DOC.read_text().partition("### Option 1")[2].partition("### Option 2")[0]
    for text in (query, adapter_rule):
        assert used_series in text
        assert _prometheus(names.METRIC_POOL_PENDING, pending_unit) in text
    assert _prometheus(names.METRIC_POOL_MAX, max_unit) in adapter_rule
    # Pool demand from these series: (in use + waiting) / pool size, 0.75 for 9 + 3 of 16.
    (used,) = (
        value for attributes, value in count.items() if (names.POOL_CONNECTION_STATE, "used") in attributes
    )
    (waiting,) = pending.values()
    (size,) = maximum.values()
    assert (used + waiting) / size == 0.75
