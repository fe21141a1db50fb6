"""``DASHSCOPE_WORKSPACE`` reaches the upstream as ``X-DashScope-WorkSpace`` on both protocols:
every WebSocket handshake of the pool and every HTTP generation call; without it, none carries
the header. Checked in what the embedded upstream received."""

from __future__ import annotations

from typing import Any

import pytest

from harness import TEXT, collect
from voxgate.client import Client
from voxgate.generation.protocol import WORKSPACE_HEADER
from voxgate.generation.v1 import generation_pb2 as pb
from voxgate.speech.protocol import WS_PATH
from voxgate.speech.v1 import speech_pb2
from voxgate_dev import DevUpstream

WORKSPACE = "ws-team-a"


@pytest.fixture(params=[WORKSPACE, None], ids=["set", "unset"])
def gateway_env(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"DASHSCOPE_WORKSPACE": request.param} if request.param else {}


async def test_the_workspace_header_is_sent_on_both_protocols_only_when_set(
    client: Client, upstream: DevUpstream, gateway_env: dict[str, Any]
) -> None:
    audio, _ = await collect(client, speech_pb2.SynthesizeRequest(text=TEXT))
    assert audio
    await client.generate(pb.GenerateRequest(messages=[pb.Message(role="user", content="Hi")]), timeout_s=30)
    request = pb.GenerateStreamRequest(messages=[pb.Message(role="user", content="Hi")])
    assert [piece async for piece in client.generate_stream(request, timeout_s=30)][-1].finish_reason
    handshakes = [r for r in upstream.recorded if r.path == WS_PATH]
    calls = [r for r in upstream.recorded if r.method == "POST"]
    assert handshakes and len(calls) == 2
    expected = gateway_env.get("DASHSCOPE_WORKSPACE")
    assert [r.header(WORKSPACE_HEADER) for r in handshakes] == [expected] * len(handshakes)
    assert [r.header(WORKSPACE_HEADER) for r in calls] == [expected, expected]
