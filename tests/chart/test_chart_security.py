"""The chart's edge security: TLS and callers from Secrets, probes with TLS on, the NetworkPolicy,
cert-manager, and the render refusing what voxgate would refuse at start (docs/security.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Process, child_env, wait_serving
from helm_chart import VALUE_SETS, lint, render, render_error
from support.certs import Authority
from voxgate import config
from voxgate.rpc.callers import key_sha256, new_key
from voxgate.stats.v1 import stats_pb2, stats_pb2_grpc

KEY = {"apiKey": {"existingSecret": "dashscope-key"}}
CERT_MANAGER: dict[str, Any] = {
    **KEY,
    "headless": {"enabled": True},
    "security": {
        "tls": {
            "enabled": True,
            "certManager": {"enabled": True, "issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}},
        },
        "mutualTls": {"enabled": True},
    },
}


def mounts(rendered: Any) -> dict[str, str]:
    return {mount["name"]: mount["mountPath"] for mount in rendered.container()["volumeMounts"]}


def secret_volumes(rendered: Any) -> dict[str, dict[str, Any]]:
    volumes = rendered.get("Deployment")["spec"]["template"]["spec"]["volumes"]
    return {volume["name"]: volume["secret"] for volume in volumes if "secret" in volume}


def test_tls_mtls_and_callers_come_from_secrets_mounted_as_directories() -> None:
    rendered = render(VALUE_SETS["security"])
    volumes = secret_volumes(rendered)
    assert volumes["tls"]["secretName"] == "voxgate-tls"
    assert volumes["client-ca"] == {
        "secretName": "callers-ca",
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
    }
    assert volumes["callers"]["secretName"] == "voxgate-callers"
    # No subPath: a subPath mount never sees the kubelet's in-place update of a rotated Secret.
    assert all("subPath" not in mount for mount in rendered.container()["volumeMounts"])
    settings = config.load(rendered.environment_values())
    directories = mounts(rendered)
    assert settings.tls_cert_file == f"{directories['tls']}/tls.crt"
    assert settings.tls_key_file == f"{directories['tls']}/tls.key"
    assert settings.tls_client_ca_file == f"{directories['client-ca']}/bundle.pem"
    assert settings.callers_file == f"{directories['callers']}/callers.toml"


def test_with_tls_the_probes_use_the_plaintext_health_port() -> None:
    rendered = render(VALUE_SETS["security"])
    container = rendered.container()
    settings = config.load(rendered.environment_values())
    health_port = int(settings.health_listen.rpartition(":")[2]) if settings.health_listen else 0
    assert health_port and str(health_port) != settings.listen.rpartition(":")[2]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port, probe
    # Without TLS, health stays on the gRPC port and no second port is opened.
    plain = render()
    assert config.load(plain.environment_values()).health_listen is None
    assert plain.container()["readinessProbe"]["grpc"]["port"] == 50051


def test_network_policy_admits_the_selected_callers_and_reaches_only_dns_and_https() -> None:
    policy = render(VALUE_SETS["security"]).get("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    grpc_rule, health_rule = policy["ingress"]
    assert grpc_rule["from"] == [{"namespaceSelector": {"matchLabels": {"voxgate-client": "true"}}}]
    assert grpc_rule["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert "from" not in health_rule and health_rule["ports"] == [{"port": 50052, "protocol": "TCP"}]
    dns, https = policy["egress"]
    assert {port["port"] for port in dns["ports"]} == {53}
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
    [block] = https["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in block["ipBlock"]["except"]
    assert render().find("NetworkPolicy") is None


@pytest.mark.parametrize("kube_version", ["1.27.0", "1.37.0"])
def test_cert_manager_certificate_renders_lints_and_the_rest_validates(kube_version: str) -> None:
    report = lint(CERT_MANAGER, kube_version)
    assert ([m for m in report["messages"] if m["severity"] >= 2], report["errors"]) == ([], [])
    rendered = render(CERT_MANAGER)
    certificate = rendered.get("Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    assert spec["secretName"] == "demo-voxgate-tls" == secret_volumes(rendered)["tls"]["secretName"]
    assert spec["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert {"demo-voxgate.speech.svc", "demo-voxgate-headless.speech.svc"} <= set(spec["dnsNames"])
    assert spec["privateKey"]["rotationPolicy"] == "Always"
    # mTLS without a CA Secret of its own: the issuer's CA in the TLS Secret's ca.crt.
    assert secret_volumes(rendered)["client-ca"]["secretName"] == "demo-voxgate-tls"
    for doc in rendered.all():
        if doc["kind"] != "Certificate":  # a CRD: the Kubernetes schemas do not know it
            kubernetes_validate.validate(doc, kube_version, strict=True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (KEY, "refuses to serve the pod network without caller authentication"),
        (
            {"security": {"mutualTls": {"enabled": True}}},
            "security.mutualTls.enabled needs security.tls.enabled",
        ),
        (
            {"security": {"tls": {"enabled": True, "certManager": {"enabled": True}}}},
            "needs security.tls.certManager.issuerRef.name",
        ),
        ({"security": {"tls": {"enabled": True, "healthPort": 50051}}}, "healthPort must differ"),
    ],
)
def test_the_render_refuses_what_voxgate_would_refuse(values: dict[str, Any], message: str) -> None:
    assert message in render_error(values)


def test_a_key_with_auth_none_or_callers_renders() -> None:
    assert render({**KEY, "config": {"VOXGATE_AUTH": "none"}}).find("Deployment") is not None
    assert render({**KEY, "security": {"callers": {"existingSecret": "c"}}}).find("Deployment") is not None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"config": {"VOXGATE_AUTH": "off"}}, "/config/VOXGATE_AUTH"),
        ({"security": {"tls": {"healthPort": 0}}}, "/security/tls/healthPort"),
        ({"security": {"networkPolicy": {"ingressFrom": []}}}, "/security/networkPolicy/ingressFrom"),
        ({"security": {"tls": {"secretNmae": "x"}}}, "secretNmae"),
    ],
)
def test_values_schema_rejects_bad_security_values(values: dict[str, Any], named: str) -> None:
    message = render_error(values)
    assert "schema" in message and named in message, message


async def test_server_with_the_charts_tls_environment_answers_the_probes_on_the_health_port(
    tmp_path: Path,
) -> None:
    rendered = render(VALUE_SETS["security"])
    env = {k: v for k, v in rendered.environment_values().items() if not k.startswith("OTEL_")}
    # The pod's mounted files, made here: same names, in a directory of the test's.
    ca = Authority("chart test CA")
    cert, key = ca.server().write(tmp_path, "tls")
    bundle, callers = tmp_path / "bundle.pem", tmp_path / "callers.toml"
    bundle.write_bytes(ca.cert_pem)
    callers.write_text(f'[[caller]]\nname = "probe-test"\nkey_sha256 = "{key_sha256(new_key())}"\n')
    env.update(
        VOXGATE_TLS_CERT_FILE=str(cert),
        VOXGATE_TLS_KEY_FILE=str(key),
        VOXGATE_TLS_CLIENT_CA_FILE=str(bundle),
        VOXGATE_CALLERS_FILE=str(callers),
    )
    probe_port = rendered.container()["readinessProbe"]["grpc"]["port"]
    assert env["VOXGATE_HEALTH_LISTEN"] == f"0.0.0.0:{probe_port}"
    server = Process(["serve", "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"], child_env(**env))
    address = server.start("voxgate listening on ")
    try:
        [health] = re.findall(r"^voxgate health \(.*\) on (\S+)$", server.output(), re.MULTILINE)
        await wait_serving(health, timeout_s=60)
        async with grpc.aio.insecure_channel(health) as channel:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                service = rendered.container()[kind]["grpc"]["service"]
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=10
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, kind
            # The health port serves health only.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stats_pb2_grpc.StatsServiceStub(channel).GetStats(
                    stats_pb2.GetStatsRequest(), timeout=10
                )
            assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
        # The gRPC port speaks TLS only.
        async with grpc.aio.insecure_channel(address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        code = server.terminate(timeout_s=60)
    assert code == 0, server.output()


def test_helm_test_pod_follows_the_security_settings() -> None:
    tls = render({"security": {"tls": {"enabled": True}}}).get("Pod")["spec"]
    [health] = tls["initContainers"]
    assert health["command"][-2:] == ["demo-voxgate:50051", "/etc/voxgate/tls/ca.crt"]
    assert tls["volumes"] == [
        {
            "name": "tls",
            "secret": {"secretName": "demo-voxgate-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
        }
    ]
    [stats] = tls["containers"]
    assert stats["command"][-2:] == ["--ca-file", "/etc/voxgate/tls/ca.crt"]
    # With caller keys the stats call would need one: health only.
    keyed = render({"security": {"callers": {"existingSecret": "c"}}}).get("Pod")["spec"]
    assert [c["name"] for c in keyed["containers"]] == ["health-checked"]
    # With mutual TLS the pod has no client certificate: no test pod.
    mutual = render({"security": {"tls": {"enabled": True}, "mutualTls": {"enabled": True}}})
    assert mutual.find("Pod") is None
