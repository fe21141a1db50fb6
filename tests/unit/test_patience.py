"""The patience rule of a synthesizer connection (docs/operations.md#detection-and-recovery):
4 x the slowest round trip it has shown, at least the floor, at most the task-start timeout."""

from __future__ import annotations

from typing import Any, cast

import pytest

from voxgate.speech.connection import PATIENCE_ROUND_TRIPS, Endpoint, Synthesizer

ENDPOINT = Endpoint(url="ws://127.0.0.1:1/", api_key="k", task_start_timeout_s=10.0, round_trip_floor_s=0.5)


def synthesizer(handshake_s: float | None) -> Synthesizer:
    return Synthesizer(cast(Any, None), ENDPOINT, handshake_s=handshake_s)


@pytest.mark.parametrize(
    ("handshake_s", "patience_s"),
    [
        (None, 10.0),  # nothing shown yet: the full task-start timeout
        (0.002, 0.5),  # loopback or a LAN: the floor
        (0.2, 0.8),  # an 80 ms path (TCP + the upgrade): 4 round trips of what it showed
        (5.0, 10.0),  # never past the full timeout
    ],
)
def test_patience_is_a_multiple_of_the_slowest_round_trip_within_the_floor_and_the_timeout(
    handshake_s: float | None, patience_s: float
) -> None:
    assert PATIENCE_ROUND_TRIPS == 4
    assert synthesizer(handshake_s).patience_s == pytest.approx(patience_s)
