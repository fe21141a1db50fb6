"""The ``path`` fixture: a real network path to the embedded upstream (tests/netpath.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netpath import NetworkPath, network_path


@pytest.fixture
def path() -> Iterator[NetworkPath]:
    with network_path() as net:
        yield net
