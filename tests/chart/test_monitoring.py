"""Metrics for Prometheus from the chart: scrape annotations, the ServiceMonitor, the alerts (checked
and unit-tested with the real ``promtool``) and the Grafana dashboard, each from one source in
helm/voxgate/files/. tests/integration/test_prometheus_queries.py runs their queries against a
Prometheus that scraped a running voxgate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_chart import VALUE_SETS, render, render_error
from support.prometheus import promtool

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "helm" / "voxgate" / "files"
ALERTS = FILES / "alerts.yaml"
DASHBOARD = FILES / "dashboard.json"
ALERT_TESTS = Path(__file__).resolve().parent / "alerts.test.yaml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

# The guide's four targets, then health.
ALERT_NAMES = [
    "VoxgateFirstPacketSlow",
    "VoxgateErrorRateHigh",
    "VoxgatePoolUtilizationHigh",
    "VoxgatePoolOversized",
    "VoxgatePoolReuseLow",
    "VoxgatePoolNotServing",
    "VoxgateUpstreamRejectingKey",
]


def alert_rules() -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(ALERTS.read_text())["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return panels


# --- the alerts ----------------------------------------------------------------------------------


def test_promtool_checks_the_rule_file() -> None:
    result = promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in result.stdout


def test_promtool_unit_tests_fire_and_do_not_fire_each_alert() -> None:
    result = promtool("test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tested for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(ALERT_NAMES)  # every alert is shown to fire (and each test has quiet series)


def test_every_alert_has_a_severity_and_a_runbook_in_the_operations_doc() -> None:
    rules = alert_rules()
    assert [rule["alert"] for rule in rules] == ALERT_NAMES
    doc = OPERATIONS_DOC.read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        anchor = rule["annotations"]["runbook"].removeprefix("docs/operations.md#")
        assert anchor == rule["alert"].lower()
        assert re.search(rf"^#### `?{rule['alert']}`?$", doc, flags=re.MULTILINE), rule["alert"]


def test_the_prometheus_rule_is_the_rule_file_and_passes_promtool(tmp_path: Path) -> None:
    rule = render(VALUE_SETS["monitoring"]).get("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool("check", "rules", rendered)
    assert result.returncode == 0, result.stdout + result.stderr


# --- scraping ------------------------------------------------------------------------------------


def test_scrape_annotations_point_at_the_metrics_port_and_the_pods_serve_it() -> None:
    rendered = render(VALUE_SETS["metrics-scrape"])
    annotations = rendered.get("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    ports = {port["name"]: port["containerPort"] for port in rendered.container()["ports"]}
    assert ports["metrics"] == int(annotations["prometheus.io/port"]) == 9464
    env = rendered.environment_values()
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus"  # OTLP stays off without otel.enabled
    assert env["OTEL_EXPORTER_PROMETHEUS_HOST"] == "0.0.0.0"
    assert env["OTEL_EXPORTER_PROMETHEUS_PORT"] == "9464"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env


def test_without_metrics_nothing_is_scraped() -> None:
    rendered = render()
    assert (
        "prometheus.io/scrape"
        not in rendered.get("Deployment")["spec"]["template"]["metadata"]["annotations"]
    )
    assert [port["name"] for port in rendered.container()["ports"]] == ["grpc"]
    assert not any(name.startswith("OTEL_") for name in rendered.environment_values())
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert rendered.find(kind) is None


def test_the_service_monitor_scrapes_every_workers_port_through_the_service() -> None:
    rendered = render(VALUE_SETS["monitoring"])
    container_ports = {port["name"]: port["containerPort"] for port in rendered.container()["ports"]}
    assert container_ports == {"grpc": 50051, "metrics": 9100, "metrics-1": 9101}  # two workers
    env = rendered.environment_values()
    assert env["OTEL_METRICS_EXPORTER"] == "otlp,prometheus"
    assert env["OTEL_EXPORTER_PROMETHEUS_PORT"] == "9100"
    service = rendered.get("Service", "demo-voxgate")
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    monitor = rendered.get("ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoints = monitor["spec"]["endpoints"]
    assert [endpoint["port"] for endpoint in endpoints] == ["metrics", "metrics-1"]
    for endpoint in endpoints:
        assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "30s")
        assert service_ports[endpoint["port"]]["targetPort"] in container_ports


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"metrics": {"enabled": True}, "config": {"VOXGATE_WORKERS": 2}},
            "set metrics.podAnnotations=false and metrics.serviceMonitor.enabled=true",
        ),
        (
            {
                "metrics": {"enabled": True},
                "otel": {"enabled": True, "extraEnv": {"OTEL_METRICS_EXPORTER": "otlp"}},
            },
            "otel.extraEnv: OTEL_METRICS_EXPORTER is set by metrics.enabled",
        ),
    ],
)
def test_contradicting_metrics_values_fail_with_the_fix(values: dict[str, Any], message: str) -> None:
    assert message in render_error(values)


# --- the dashboard -------------------------------------------------------------------------------


def test_the_dashboard_config_map_is_the_dashboard_file_labelled_for_the_sidecar() -> None:
    rendered = render(VALUE_SETS["monitoring"])
    config_map = rendered.get("ConfigMap", "demo-voxgate-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "voxgate"
    assert json.loads(config_map["data"]["voxgate.json"]) == json.loads(DASHBOARD.read_text())


def test_the_dashboard_has_the_issues_panels_each_described_in_the_docs() -> None:
    titles = [panel["title"] for panel in dashboard_panels()]
    for wanted in (
        "First packet delay p50 / p99 by model",
        "Error rate by status",
        "Pool utilization (band 60-80 % at peak)",
        "Pool reuse ratio (target > 95 %)",
        "Pool wait",
        "Evictions by reason",
        "Refused calls",
        "Generation: time to first token",
        "Generation: tokens",
    ):
        assert any(title.startswith(wanted) for title in titles), wanted
    doc = OPERATIONS_DOC.read_text()
    for panel in dashboard_panels():
        assert panel["description"] and panel["targets"]
        assert f"**{panel['title']}**" in doc, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in target["expr"]


def test_the_target_bands_are_the_guides() -> None:
    by_title = {panel["title"]: panel for panel in dashboard_panels()}

    def steps(prefix: str) -> list[Any]:
        (panel,) = (panel for title, panel in by_title.items() if title.startswith(prefix))
        return [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert steps("First packet") == [None, 500]
    assert steps("Error rate") == [None, 0.001]
    assert steps("Pool utilization") == [None, 0.6, 0.8]
    assert steps("Pool reuse") == [None, 0.95]
