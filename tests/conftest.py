"""Real parts on loopback: the embedded upstream and the voxgate server, ephemeral ports.

Shared by tests/integration and tests/faults (unit tests define their own fixtures).

``gateway`` runs the real :class:`~voxgate.app.App` (gRPC server, pool, servicer) in
the test's event loop against a real :class:`~voxgate_dev.DevUpstream`;
tests talk to it through the real client over a TCP socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
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
