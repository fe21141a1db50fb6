"""``OTEL_METRICS_EXPORTER=prometheus``: a running voxgate serves its metrics on ``/metrics``.

The gateway runs in this process with telemetry from ``telemetry.from_env``; the test scrapes the
endpoint over HTTP as Prometheus would and parses the text with the Prometheus client's parser.
"""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import API_KEY, gateway_settings, pool_back_to_size, wait_serving
from support import traffic
from voxgate.app import App
from voxgate.observability import telemetry
from voxgate_dev import DevUpstream, UpstreamOptions

# Every family voxgate writes once the traffic in support/traffic.py ran, under the names the
# OpenTelemetry Prometheus exporter gives them (unit suffix, _total on counters).
EXPECTED = {
    "voxgate_server_requests": "counter",
    "voxgate_server_request_duration_milliseconds": "histogram",
    "voxgate_tts_first_packet_delay_milliseconds": "histogram",
    "voxgate_pool_connection_wait_time_milliseconds": "histogram",
    "voxgate_pool_connection_create_time_milliseconds": "histogram",
    "voxgate_pool_connection_created": "counter",
    "voxgate_pool_connection_reused": "counter",
    "voxgate_pool_connection_evicted": "counter",
    "voxgate_pool_leases": "counter",
    "voxgate_pool_lease_refused": "counter",
    "voxgate_pool_connection_count": "gauge",
    "voxgate_pool_connection_max": "gauge",
    "voxgate_pool_connection_pending_requests": "gauge",
    "voxgate_pool_serving": "gauge",
    "voxgate_pool_upstream_rejected": "gauge",
    "voxgate_generation_time_to_first_token_milliseconds": "histogram",
    "gen_ai_client_token_usage": "histogram",
    "voxgate_http_connection_created": "counter",
    "process_cpu_seconds": "counter",
    "target_info": "gauge",
}


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    return UpstreamOptions(api_key=API_KEY, rtf=1.0)  # real time: a held stream stays held


@pytest.fixture
def prometheus_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")  # the bound port is in metrics_url


async def test_metrics_endpoint_serves_every_family(upstream: DevUpstream, prometheus_env: None) -> None:
    setup = telemetry.from_env()
    assert setup.metrics and not setup.traces and setup.metrics_url
    assert setup.metrics_url.startswith("http://127.0.0.1:") and setup.metrics_url.endswith("/metrics")
    assert f"metrics for Prometheus at {setup.metrics_url}" in telemetry.describe(setup)
    app = App(gateway_settings(upstream, API_KEY, **traffic.GATEWAY_ENV), setup)
    await app.start()
    try:
        await wait_serving(app.address)
        await traffic.every_series(app.address)
        await pool_back_to_size(app)
        async with aiohttp.ClientSession() as session, session.get(setup.metrics_url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    finally:
        await app.stop()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {name: families[name].type for name in EXPECTED if name in families} == EXPECTED

    def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope"))): s.value
            for s in families[name].samples
            if s.name == name + ("_total" if families[name].type == "counter" else "")
        }

    requests = samples("voxgate_server_requests")
    synthesize = (("rpc_method", "Synthesize"), ("rpc_service", "voxgate.speech.v1.SpeechService"))
    assert requests[(("rpc_grpc_status_code", "0"), *synthesize)] == 2
    assert requests[(("rpc_grpc_status_code", "3"), *synthesize)] == 1
    assert samples("voxgate_pool_connection_reused")[(("voxgate_pool_name", "tts"),)] >= 1
    refused = samples("voxgate_pool_lease_refused")
    assert refused[(("voxgate_pool_lease_refusal_reason", "timeout"), ("voxgate_pool_name", "tts"))] == 1
    evicted = samples("voxgate_pool_connection_evicted")
    assert evicted[(("voxgate_pool_eviction_reason", "discarded"), ("voxgate_pool_name", "tts"))] >= 1
    assert samples("voxgate_pool_serving") == {(("voxgate_pool_name", "tts"),): 1}
    assert samples("voxgate_pool_upstream_rejected") == {(("voxgate_pool_name", "tts"),): 0}
    assert samples("voxgate_pool_connection_max") == {(("voxgate_pool_name", "tts"),): 1}


async def test_the_endpoint_closes_with_the_telemetry(prometheus_env: None) -> None:
    setup = telemetry.from_env()
    assert setup.metrics_url
    async with aiohttp.ClientSession() as session:
        async with session.get(setup.metrics_url) as response:
            assert response.status == 200
        setup.shutdown()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(setup.metrics_url):
                pass


def test_a_bad_port_or_exporter_names_the_variable() -> None:
    with pytest.raises(telemetry.TelemetryConfigError, match="OTEL_EXPORTER_PROMETHEUS_PORT"):
        telemetry.from_env({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "x"})
    with pytest.raises(telemetry.TelemetryConfigError, match=r"^OTEL_METRICS_EXPORTER: "):
        telemetry.from_env({"OTEL_METRICS_EXPORTER": "statsd"})
