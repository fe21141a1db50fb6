"""The benchmark's arithmetic: percentiles, and what one level's samples and costs reduce to."""

from __future__ import annotations

import math

import pytest
from bench.stats import PCM_BYTES_PER_SECOND, Costs, Sample, percentile, summarize


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [40.0, 10.0, 30.0, 20.0]  # unsorted on purpose
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0  # halfway between 20 and 30
    assert percentile(values, 99) == pytest.approx(30.0 + 0.97 * 10.0)


def test_percentile_of_one_value_and_of_none() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="q must be within"):
        percentile([1.0], 101)


def test_summarize_counts_errors_and_rates_per_completed_stream() -> None:
    one_second = PCM_BYTES_PER_SECOND
    samples = [
        Sample(100.0, 900.0, one_second, "OK", pool_wait_ms=0.1, hop_ms=0.2, reused=True),
        Sample(200.0, 950.0, 2 * one_second, "OK", pool_wait_ms=0.3, hop_ms=0.4, reused=True),
        Sample(-1.0, 10.0, 0, "UNAVAILABLE"),
        Sample(150.0, 500.0, one_second // 2, "UNAVAILABLE"),  # audio, then a failure: not ok
    ]
    costs = Costs(wall_s=2.0, client_cpu_s=0.02, gateway_cpu_s=0.04, upstream_cpu_s=0.1, upstream_connects=1)
    result = summarize("a", 4, samples, costs)
    assert (result.requests, result.errors, result.error_rate) == (4, 2, 0.5)
    assert result.error_kinds == {"UNAVAILABLE": 2}
    assert result.p50_ms == 150.0
    assert result.p99_ms == pytest.approx(199.0)
    assert result.streams_per_s == 1.0  # two completed streams in two seconds
    assert result.audio_s_per_s == 1.5  # three seconds of audio in two seconds
    assert result.client_cpu_ms_per_stream == 10.0
    assert result.gateway_cpu_ms_per_stream == 20.0
    assert result.cpu_ms_per_stream == 30.0
    assert result.upstream_cpu_ms_per_stream == 50.0
    assert result.reuse == 0.75  # one connect for four requests
    assert result.hop_p50_ms == pytest.approx(0.3)
    assert result.voxgate_reused == 1.0  # both completed calls ran on a connection that had run a task


def test_sample_rows_round_trip() -> None:
    sample = Sample(12.5, 800.25, 3200, "OK", pool_wait_ms=0.5, hop_ms=0.25, reused=True)
    assert Sample.from_row(sample.to_row()) == sample
