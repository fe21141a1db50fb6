"""Every dashboard panel's and alert's query, evaluated by a real Prometheus that scraped a running
voxgate: each returns series, so every name and label in them is one voxgate really writes.

voxgate runs in this process with ``OTEL_METRICS_EXPORTER=prometheus``; traffic from
``support.traffic`` makes it write every series (a reused connection, an eviction, a refused lease,
an error status, generation tokens); ``prometheus`` (Debian's, see ``support.prometheus``) scrapes it
every second. Alert expressions are evaluated without their threshold comparison (the traffic is
meant to exercise the series, not to breach targets); the promtool tests in tests/chart show each
threshold firing and not firing.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import yaml

from harness import API_KEY, gateway_settings, pool_back_to_size, wait_serving
from support import traffic
from support.prometheus import Prometheus
from voxgate.app import App
from voxgate.observability import telemetry
from voxgate_dev import DevUpstream, UpstreamOptions

FILES = Path(__file__).resolve().parents[2] / "helm" / "voxgate" / "files"
# A comparison with a number at the end of an alert expression (`> 500`, `== 0`).
THRESHOLD = re.compile(r"\s*(>|<|==)\s*[0-9.]+\s*$")
# A subquery's steps fall on multiples of its resolution in absolute time: a run of seconds holds no
# 5-minute step, so VoxgatePoolOversized's day of 5-minute steps is evaluated at the scrape interval.
SUBQUERY_STEP = re.compile(r"\[1d:5m\]")


def dashboard_queries() -> dict[str, str]:
    """Grafana's variables as a dashboard with every job selected would send them."""
    panels = json.loads((FILES / "dashboard.json").read_text())["panels"]
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"]
        .replace("$__rate_interval", "1m")
        .replace('job=~"$job"', 'job=~".+"')
        for panel in panels
        for target in panel["targets"]
    }


def alert_queries() -> dict[str, str]:
    (group,) = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    queries = {}
    for rule in group["rules"]:
        expr = rule["expr"].strip()
        # `A < 0.6 and on (job) B > 0`: both sides, each without its threshold.
        parts = re.split(r"\s+and on \(job\)\s+", expr)
        for n, part in enumerate(parts):
            bare = SUBQUERY_STEP.sub("[1d:1s]", THRESHOLD.sub("", part))
            assert bare != part or len(parts) > 1, f"{rule['alert']}: no threshold found in {part!r}"
            queries[f"{rule['alert']} [{n}]"] = bare
    return queries


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)  # real time: a held stream stays held


async def test_every_dashboard_and_alert_query_returns_series(
    upstream: DevUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
    setup = telemetry.from_env()
    assert setup.metrics_url
    target = setup.metrics_url.removeprefix("http://").removesuffix("/metrics")
    app = App(gateway_settings(upstream, API_KEY, **traffic.GATEWAY_ENV), setup)
    await app.start()
    try:
        await wait_serving(app.address)
        with Prometheus([target]) as prometheus:
            # Two scrapes before the traffic and after it: rate() needs two samples, and a counter
            # born between scrapes counts from its first one.
            await asyncio.to_thread(prometheus.wait_scrapes, 2)
            await traffic.every_series(app.address)
            await traffic.every_series(app.address)
            await pool_back_to_size(app)
            scraped = prometheus.scrapes()
            await asyncio.to_thread(prometheus.wait_scrapes, scraped + 3)
            queries = {**dashboard_queries(), **alert_queries()}
            results = {
                name: await asyncio.to_thread(prometheus.query, expr) for name, expr in queries.items()
            }
    finally:
        await app.stop()
    empty = [f"{name}: {queries[name]}" for name, result in results.items() if not result]
    assert not empty, "queries that returned no series:\n" + "\n".join(empty)
    # The alerts group by job: the scrape's job label is there, and series carry voxgate's labels.
    assert {r["metric"].get("job") for r in results["VoxgateErrorRateHigh [0]"]} == {"voxgate"}
    models = {r["metric"]["voxgate_tts_model"] for r in results["VoxgateFirstPacketSlow [0]"]}
    assert models == {upstream_model(results)}


def upstream_model(results: dict[str, list[dict[str, object]]]) -> str:
    """The TTS model of the dashboard's p50 series (one model in this run)."""
    (series,) = [r for name, r in results.items() if name.startswith("First packet delay") and "[A]" in name]
    (only,) = series
    metric = only["metric"]
    assert isinstance(metric, dict)
    return str(metric["voxgate_tts_model"])
