"""Where ``OTEL_METRICS_EXPORTER=prometheus`` serves /metrics: the spec's variables, a port per worker."""

from __future__ import annotations

import pytest

from voxgate.observability.prometheus import PrometheusConfigError, address
from voxgate.workers import WORKER_ENV


def test_the_specs_defaults_and_variables() -> None:
    assert address({}) == ("localhost", 9464)
    assert address({"OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0", "OTEL_EXPORTER_PROMETHEUS_PORT": "9100"}) == (
        "0.0.0.0",
        9100,
    )


def test_worker_i_serves_port_plus_i_and_port_0_stays_ephemeral() -> None:
    env = {"OTEL_EXPORTER_PROMETHEUS_PORT": "9464"}
    assert [address({**env, WORKER_ENV: str(i)})[1] for i in range(3)] == [9464, 9465, 9466]
    assert address({"OTEL_EXPORTER_PROMETHEUS_PORT": "0", WORKER_ENV: "2"})[1] == 0


@pytest.mark.parametrize("port", ["http", "-1", "65536"])
def test_a_bad_port_names_the_variable(port: str) -> None:
    with pytest.raises(PrometheusConfigError, match=r"^OTEL_EXPORTER_PROMETHEUS_PORT: "):
        address({"OTEL_EXPORTER_PROMETHEUS_PORT": port})
