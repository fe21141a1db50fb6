"""A metrics backend that says no: voxgate pointed at a trace-only OTLP backend.

The receiver from ``support.otlp`` accepts traces and answers every metrics export with
``UNIMPLEMENTED``, as Arize Phoenix does. Exports run every 50 ms, so a dozen refusals arrive in
under a second; the log must say it once (a WARNING with what to do), not an ERROR per export, and
the refusals must be counted (read back on the Prometheus endpoint, the route that still works).
"""

from __future__ import annotations

import logging
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.otlp import OtlpReceiver
from voxgate.observability import telemetry
from voxgate.observability.refusals import GRPC_EXPORTER_LOGGER, MetricsRefusals

REFUSALS = 12
FAILED = "Failed to export %s to %s, error code: %s, error details: %s"  # the OTLP exporter's own


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("voxgate_")
    }


def test_a_refusing_backend_is_said_once_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with OtlpReceiver(refuse_metrics=True) as receiver:
        for name, value in {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_METRICS_EXPORTER": "otlp,prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
            "OTEL_METRIC_EXPORT_INTERVAL": "50",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        setup = telemetry.from_env()
        try:
            assert setup.traces and setup.metrics and setup.metrics_url
            setup.meter.create_counter("voxgate.test.counter").add(1)
            with setup.tracer.start_as_current_span("still traced"):
                pass
            assert receiver.wait_for(lambda: receiver.metrics_refused >= REFUSALS, timeout_s=30)
            assert receiver.wait_for(lambda: bool(receiver.spans()), timeout_s=30)
            counted = scrape(setup.metrics_url)["voxgate_telemetry_metrics_refused_total"]
            assert counted >= REFUSALS - 1  # the export in flight may not have been refused yet
        finally:
            setup.shutdown()
    assert [span.name for span in receiver.spans()] == ["still traced"]
    said = [r for r in caplog.records if r.name == GRPC_EXPORTER_LOGGER]
    assert [r.levelname for r in said] == ["WARNING"], [r.getMessage() for r in said]
    message = said[0].getMessage()
    assert f"the OTLP endpoint {receiver.endpoint.removeprefix('http://')}" in message
    assert "does not accept metrics (UNIMPLEMENTED)" in message
    for advice in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_METRICS_EXPORTER=prometheus", "=none"):
        assert advice in message
    # The filter left with the telemetry: a later setup's exporter logs as it would.
    assert not [f for f in logging.getLogger(GRPC_EXPORTER_LOGGER).filters if isinstance(f, MetricsRefusals)]


def test_a_long_refusal_is_said_again_at_a_low_rate_with_the_count() -> None:
    now = [0.0]
    refusals = MetricsRefusals(repeat_s=600, clock=lambda: now[0])

    def refused() -> logging.LogRecord:
        import grpc

        return logging.LogRecord(
            GRPC_EXPORTER_LOGGER, logging.ERROR, __file__, 1,
            FAILED,
            ("metrics", "collector:4317", grpc.StatusCode.UNIMPLEMENTED, "unknown service"), None,
        )  # fmt: skip

    said = []
    for second in range(0, 1300, 15):  # an export every 15 s for 21+ minutes
        now[0] = float(second)
        record = refused()
        if refusals.filter(record):
            said.append((second, record.levelname, record.getMessage()))
    assert [(second, level) for second, level, _ in said] == [
        (0, "WARNING"),
        (600, "WARNING"),
        (1200, "WARNING"),
    ]
    assert said[1][2] == "the OTLP endpoint collector:4317 still refuses metrics: 41 exports refused"
    assert refusals.count == len(range(0, 1300, 15))


def test_other_export_errors_pass_untouched() -> None:
    import grpc

    refusals = MetricsRefusals()
    for exporting, code in (
        ("metrics", grpc.StatusCode.UNAVAILABLE),
        ("traces", grpc.StatusCode.UNIMPLEMENTED),
    ):
        record = logging.LogRecord(
            GRPC_EXPORTER_LOGGER, logging.ERROR, __file__, 1, FAILED,
            (exporting, "collector:4317", code, "x"), None,
        )  # fmt: skip
        assert refusals.filter(record) and record.levelname == "ERROR"
    assert refusals.count == 0
