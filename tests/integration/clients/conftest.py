"""The Node and Go clients, run as the processes a user runs, against a real voxgate.

``served`` is ``voxgate serve`` on its embedded default (one process for the session);
tests that switch upstream faults use the in-process ``gateway`` of tests/integration instead.
The clients are built by ``make clients`` (a prerequisite of ``make test``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from harness import Process, child_env, wait_serving
from polyglot import BUILT, COMMANDS, Cli


@pytest.fixture(params=sorted(COMMANDS))
def cli(request: pytest.FixtureRequest) -> Cli:
    language: str = request.param
    if not BUILT[language].exists():
        pytest.fail(f"the {language} client is not built: run `make clients` (`make test` does)")
    return Cli(language)


@pytest.fixture(scope="session")
def served() -> Iterator[str]:
    """The address of ``voxgate serve`` running on its embedded default."""
    server = Process(["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "2"], child_env())
    address = server.start("voxgate listening on ")
    asyncio.run(wait_serving(address, timeout_s=30))
    yield address
    code = server.terminate()
    assert code == 0, server.output()
