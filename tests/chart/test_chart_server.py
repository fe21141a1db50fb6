"""The real ``voxgate serve`` process, started with the environment the chart gives a pod, answers the
chart's gRPC probes and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Process, child_env, wait_serving
from helm_chart import VALUE_SETS, render


async def test_server_with_the_charts_environment_answers_the_probe_and_drains() -> None:
    rendered = render(VALUE_SETS["everything"])
    # OTEL_* belong to the OpenTelemetry SDK, and their collector is not here; the rest is voxgate's.
    env = {k: v for k, v in rendered.environment_values().items() if not k.startswith("OTEL_")}
    probe = rendered.container()["startupProbe"]["grpc"]
    assert env["VOXGATE_LISTEN"] == f"0.0.0.0:{probe['port']}"
    # Only the address changes (a fixed port could be taken on a shared machine); the flag overrides
    # the variable as in any deployment.
    server = Process(["serve", "--listen", "127.0.0.1:0"], child_env(**env))
    address = server.start("voxgate listening on ")
    try:
        await wait_serving(address, timeout_s=60)
        async with grpc.aio.insecure_channel(address) as channel:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                service = rendered.container()[kind]["grpc"]["service"]
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=10
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, kind
    finally:
        code = server.terminate(timeout_s=60)
    assert code == 0, server.output()
    # The chart's settings reached the server (it logs them at start).
    assert "'pool_max_size': 32" in server.output() and "'drain_grace_s': 45.5" in server.output()


async def _run(command: list[str]) -> tuple[int, str]:
    """Run one of the helm test pod's commands here: its `python` is this interpreter, its `voxgate`
    this checkout's CLI."""
    program = {"python": [sys.executable], "voxgate": [sys.executable, "-m", "voxgate.cli"]}[command[0]]
    proc = await asyncio.create_subprocess_exec(
        *program, *command[1:], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return await proc.wait(), output.decode()


async def test_the_helm_test_pods_commands_pass_against_a_real_server() -> None:
    rendered = render(VALUE_SETS["default"])
    pod = rendered.get("Pod")["spec"]
    service_target = pod["containers"][0]["command"][-1]
    server = Process(["serve", "--listen", "127.0.0.1:0"], child_env())
    address = server.start("voxgate listening on ")
    try:
        await wait_serving(address, timeout_s=60)
        # The pod reaches the Service; here the server's own address stands in for it.
        for container in (*pod["initContainers"], *pod["containers"]):
            command = [address if arg == service_target else arg for arg in container["command"]]
            code, output = await _run(command)
            assert code == 0, (container["name"], output)
            if container["name"] == "health":
                assert f"{address} health: SERVING" in output
            else:
                assert output.startswith("pool tts: serving"), output
    finally:
        assert server.terminate(timeout_s=60) == 0, server.output()


async def test_the_helm_test_pods_health_check_fails_while_the_upstream_rejects_the_key() -> None:
    health = render(VALUE_SETS["default"]).get("Pod")["spec"]["initContainers"][0]
    upstream = Process(["dev-upstream", "--port", "0"], child_env(DASHSCOPE_API_KEY="sk-upstreams-own-key"))
    ws_url = upstream.start("voxgate dev-upstream listening on ")
    server = Process(
        ["serve", "--listen", "127.0.0.1:0", "--pool-max-size", "1"],
        child_env(DASHSCOPE_API_KEY="sk-a-key-it-rejects", DASHSCOPE_WEBSOCKET_BASE_URL=ws_url),
    )
    try:
        address = server.start("voxgate listening on ")
        code, output = await _run([*health["command"][:-1], address])
    finally:
        server.terminate(timeout_s=60)
        upstream.terminate(timeout_s=60)
    assert code == 1, output
    assert f"{address} health: NOT_SERVING" in output
