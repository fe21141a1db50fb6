"""Real parts on loopback: the embedded upstream and the voxgate server, ephemeral ports.

Shared by tests/integration and tests/faults (unit tests define their own fixtures).

``gateway`` runs the real :class:`~voxgate.app.App` (gRPC server, pool, servicer) in
the test's event loop against a real :class:`~voxgate_dev.DevUpstream`;
tests talk to it through the real client over a TCP socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import API_KEY, gateway_settings, running_gateway
from voxgate.app import App
from voxgate.client import Client
from voxgate_dev import DevUpstream, Faults, UpstreamOptions


@pytest.fixture
def upstream_options() -> UpstreamOptions:
    """Override in a test module (or parametrize) to change the upstream."""
    return UpstreamOptions(api_key=API_KEY)


@pytest.fixture
async def upstream(upstream_options: UpstreamOptions) -> AsyncIterator[DevUpstream]:
    server = DevUpstream(upstream_options)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def gateway_env() -> dict[str, Any]:
    """Extra VOXGATE_* settings for the gateway; override per module or test."""
    return {}


@pytest.fixture
async def gateway(upstream: DevUpstream, gateway_env: dict[str, Any]) -> AsyncIterator[App]:
    async with running_gateway(gateway_settings(upstream, **gateway_env)) as app:
        yield app


@pytest.fixture
async def client(gateway: App) -> AsyncIterator[Client]:
    async with Client(gateway.address) as client:
        yield client


@pytest.fixture
def set_faults(upstream: DevUpstream) -> Callable[..., None]:
    def apply(**faults: Any) -> None:
        upstream.set_faults(replace(Faults(), **faults))

    return apply


# --- markers ------------------------------------------------------------------------------------
# Every test gets the marker of its folder (registered in pyproject.toml), so a subset can be picked
# with -m: `make test-python` is -m "not clients", `make test-fast` -m "not slow and not clients".
_TESTS = Path(__file__).resolve().parent
_FOLDER_MARKERS = {"unit", "integration", "faults", "chart", "netns"}
_CLIENTS = ("integration", "clients")

# `slow`: the tests that took 1 s or more in `pytest --durations=80` (2 cores, shared). Kept here,
# not on each test, so the list is measured and revised in one place; a name that no longer exists
# in its file stops the run (below) rather than silently making the fast subset slower.
_SLOW: dict[str, tuple[str, ...]] = {
    "chart/test_chart_server.py": ("test_server_with_the_charts_environment_answers_the_probe_and_drains",),
    "faults/test_backpressure.py": ("test_a_reader_that_stops_holds_the_upstream_back_and_loses_nothing",),
    "faults/test_connection_faults.py": (
        "test_half_open_idle_connections_are_evicted_by_ping_and_replaced",
        "test_half_open_mid_stream_ends_unavailable_with_the_bytes_delivered",
        "test_idle_connections_are_recycled_before_the_upstream_cuts_them",
        "test_idle_cut_by_the_upstream_is_noticed_and_refilled",
        "test_upstream_closing_new_connections_turns_not_serving_with_the_reason_then_recovers",
        "test_upstream_killed_mid_stream_fails_loudly_then_the_pool_refills",
        "test_upstream_restart_refills_with_connects_in_flight_never_above_the_cap",
    ),
    "faults/test_drain.py": (
        "test_sigterm_during_twenty_streams_drains_them_whole",
        "test_streams_still_running_when_the_grace_ends_say_how_much_audio_they_got",
    ),
    "faults/test_overload.py": (
        "test_two_stalled_readers_on_a_pool_of_two_lock_nobody_out_beyond_the_stall_limit",
        "test_a_4mb_text_is_refused_while_normal_calls_keep_their_first_packet_delay",
        "test_a_burst_of_2000_calls_ends_each_ok_or_explicitly_refused_never_bare_cancelled",
        "test_a_call_past_the_in_flight_limit_is_refused_at_once_saying_why",
        "test_200_cancels_after_the_first_chunk_cost_a_handful_of_reconnects_and_no_poisoned_reuse",
        "test_the_task_start_rate_limit_holds_run_task_starts_at_the_upstream",
        "test_a_start_that_would_wait_past_the_deadline_is_refused_saying_why",
    ),
    "faults/test_task_faults.py": (
        "test_client_cancel_mid_stream_with_salvage_off_discards_the_connection",
        "test_client_deadline_mid_stream_is_deadline_exceeded_and_salvages_the_connection",
        "test_no_reused_connection_ever_meets_invalid_action_run_task",
        "test_retries_stop_within_the_callers_deadline_with_the_real_reason",
        "test_throttling_once_is_retried_with_backoff",
        "test_transient_task_failure_before_audio_is_retried_on_another_connection",
    ),
    "integration/test_bench_smoke.py": ("test_every_variant_completes_and_the_report_fills_the_docs",),
    "integration/test_cli.py": (
        "test_api_key_never_appears_in_output",
        "test_bad_configuration_names_the_variable",
        "test_generate_streams_on_the_embedded_default",
        "test_serve_on_the_embedded_default_then_synth_a_wav_then_drain",
        "test_synth_reports_a_bad_request_with_its_status",
    ),
    "integration/test_devupstream_protocol.py": (
        "test_module_runs_as_a_process_with_the_env_key",
        "test_pings_keep_alive_when_configured",
    ),
    "integration/test_generate.py": (
        "test_caller_deadline_is_deadline_exceeded_and_frees_the_connection",
        "test_sequential_and_concurrent_calls_stay_within_the_connector_limit",
    ),
    "integration/test_generate_inflight.py": (
        "test_cancelled_stream_releases_its_upstream_connection",
        "test_deadline_mid_stream_is_deadline_exceeded_and_releases_the_connection",
        "test_first_delta_arrives_while_the_upstream_is_still_answering",
    ),
    "integration/test_lifecycle.py": ("test_stop_drains_in_flight_streams_and_refuses_new_ones",),
    "integration/test_stats.py": (
        "test_stats_count_leases_reuse_and_the_peak",
        "test_voxgate_stats_prints_reuse_ratio_and_utilization",
        "test_overload_counts_in_stats_and_voxgate_stats",
    ),
    "integration/test_synthesize_inflight.py": (
        "test_cancel_mid_stream_leaves_the_pool_healthy",
        "test_deadline_mid_stream_is_deadline_exceeded_and_the_pool_recovers",
    ),
    "integration/test_telemetry_overload.py": ("test_a_refused_and_a_salvaged_call_in_spans_and_metrics",),
    "integration/test_telemetry_pool.py": (
        "test_an_overflow_lease_and_a_cancelled_call_in_spans_and_metrics",
    ),
    "integration/test_prometheus_queries.py": ("test_every_dashboard_and_alert_query_returns_series",),
    "integration/test_prometheus_exporter.py": ("test_metrics_endpoint_serves_every_family",),
    "integration/test_metrics_refused.py": ("test_a_refusing_backend_is_said_once_and_counted",),
    "integration/test_min_chunk.py": ("test_a_real_time_stream_is_not_held_back_to_fill_a_chunk",),
    "chart/test_monitoring.py": ("test_promtool_unit_tests_fire_and_do_not_fire_each_alert",),
    "integration/test_upstream_silence.py": ("test_a_paced_stream_longer_than_the_frame_timeout_completes",),
    "integration/test_vendor_sdk.py": (
        "test_pool_reuses_its_sockets",
        "test_returning_an_unfinished_synthesizer_is_the_documented_trap",
    ),
    "integration/test_workers.py": (
        "test_a_single_server_does_not_share_its_port",
        "test_serve_lifts_a_low_soft_limit_on_open_files",
        "test_two_workers_share_one_port_and_both_answer",
    ),
    "unit/test_imports.py": ("test_importing_the_app_loads_no_embedded_upstream",),
}


def _check_slow_list() -> None:
    for file, names in _SLOW.items():
        path = _TESTS / file
        source = path.read_text() if path.exists() else ""
        missing = [name for name in names if f"def {name}(" not in source]
        if missing:
            raise pytest.UsageError(f"tests/conftest.py marks as slow what is not in tests/{file}: {missing}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _check_slow_list()
    slow = {(file, name) for file, names in _SLOW.items() for name in names}
    for item in items:
        parts = item.path.resolve().relative_to(_TESTS).parts
        if parts[0] in _FOLDER_MARKERS:
            item.add_marker(parts[0])
        if parts[:2] == _CLIENTS:
            item.add_marker("clients")
        name = getattr(item, "originalname", item.name)
        if ("/".join(parts), name) in slow or parts[0] == "netns":  # netns: real-time audio over veth
            item.add_marker("slow")
