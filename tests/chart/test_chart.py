"""The Helm chart: strict lint, every manifest valid for two Kubernetes versions, and the facts that matter.

Rendered by the real Helm library (helm-python-sdk: Helm's Go SDK); validated by kubernetes-validate
against the Kubernetes OpenAPI schemas it bundles, in strict mode (unknown fields are errors).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from typing import Any

import kubernetes_validate
import pytest

from helm_chart import CHART_DIR, VALUE_SETS, Rendered, chart_values, lint, render, render_error
from voxgate import config
from voxgate.app import LIVENESS_SERVICE

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: native gRPC probes are GA in
# 1.27) and the newest the bundled schemas know.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

# Standard OpenTelemetry SDK variables are read by the SDK, not by voxgate's config.
OTEL_PREFIX = "OTEL_"
# Downward-API values that exist only to be expanded into OTEL_RESOURCE_ATTRIBUTES.
DOWNWARD_ENV = {"K8S_POD_NAME": "metadata.name", "K8S_NAMESPACE_NAME": "metadata.namespace"}


def _configmap_data(rendered: Rendered) -> dict[str, str]:
    data: dict[str, str] = rendered.get("ConfigMap")["data"]
    return data


def _pod_spec(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.get("Deployment")["spec"]["template"]["spec"]
    return spec


# --- lint and schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_strict_lint_is_clean(value_set: str, kube_version: str) -> None:
    report = lint(VALUE_SETS[value_set], kube_version)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert report["total_charts_linted"] == 1
    assert (problems, report["errors"]) == ([], [])


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_manifest_is_valid_kubernetes(value_set: str, kube_version: str) -> None:
    rendered = render(VALUE_SETS[value_set])
    assert {"Deployment", "Service", "ConfigMap"} <= set(rendered.kinds())
    for doc in rendered.all():
        # Raises ValidationError (unknown field, wrong type) or SchemaNotFoundError (unknown kind
        # or apiVersion for this Kubernetes version): both fail the test.
        kubernetes_validate.validate(doc, kube_version, strict=True)


def test_default_install_renders_these_objects_and_options_add_theirs() -> None:
    assert render().kinds() == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert render(VALUE_SETS["api-key-value"]).find("Secret") is not None
    assert render(VALUE_SETS["headless-on"]).kinds().count("Service") == 2


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"replicaCount": "3"}, "/replicaCount"),
        ({"config": {"VOXGATE_POOL_MAX_SZIE": 4}}, "VOXGATE_POOL_MAX_SZIE"),
        ({"config": {"VOXGATE_POOL_MAX_SIZE": 0}}, "/config/VOXGATE_POOL_MAX_SIZE"),
        ({"config": {"VOXGATE_LOG_LEVEL": "chatty"}}, "/config/VOXGATE_LOG_LEVEL"),
        ({"config": {"DASHSCOPE_WEBSOCKET_BASE_URL": "https://example.com"}}, "DASHSCOPE_WEBSOCKET_BASE_URL"),
        ({"drain": {"graceSeconds": -1}}, "/drain/graceSeconds"),
        ({"otel": {"extraEnv": {"PATH": "/tmp"}}}, "'PATH' does not match"),
        ({"containerPort": 70000}, "/containerPort"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], named: str) -> None:
    message = render_error(values)
    assert "schema" in message and named in message, message


# --- the API key -----------------------------------------------------------------------------


def test_existing_secret_is_referenced_and_no_key_is_inlined() -> None:
    rendered = render(VALUE_SETS["existing-secret"])
    assert rendered.find("Secret") is None
    key = rendered.environment()[config.API_KEY_ENV]
    assert key == {
        "name": config.API_KEY_ENV,
        "valueFrom": {"secretKeyRef": {"name": "dashscope-key", "key": "api-key"}},
    }


def test_key_value_lives_only_in_the_created_secret() -> None:
    key = VALUE_SETS["api-key-value"]["apiKey"]["value"]
    rendered = render(VALUE_SETS["api-key-value"])
    secret = rendered.get("Secret")
    assert base64.b64decode(secret["data"]["DASHSCOPE_API_KEY"]).decode() == key
    others = Rendered(tuple(doc for doc in rendered.all() if doc["kind"] != "Secret"), rendered.notes)
    assert key not in others.text()
    assert base64.b64encode(key.encode()).decode() not in others.text()
    ref = rendered.environment()[config.API_KEY_ENV]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "DASHSCOPE_API_KEY"}


def test_a_key_value_and_an_existing_secret_together_fail_the_render() -> None:
    message = render_error({"apiKey": {"value": "sk-both", "existingSecret": "dashscope-key"}})
    assert "apiKey: set apiKey.value or apiKey.existingSecret, not both" in message
    assert "sk-both" not in message


def test_without_a_key_no_key_variable_and_the_notes_say_embedded_upstream() -> None:
    rendered = render()
    assert config.API_KEY_ENV not in rendered.environment()
    assert "embedded local upstream" in rendered.notes


# --- environment: exactly what the server reads ----------------------------------------------


def test_env_variables_are_exactly_the_ones_the_server_reads() -> None:
    rendered = render(VALUE_SETS["everything"])
    chart_env = {name for name in rendered.environment() if not name.startswith(OTEL_PREFIX)}
    server_env = {spec.env for spec in config.SETTINGS if spec.env} | {config.API_KEY_ENV}
    missing = sorted(server_env - chart_env)
    unknown = sorted(chart_env - server_env - set(DOWNWARD_ENV))
    assert not missing, f"server settings the chart cannot set (add them to values.yaml config:): {missing}"
    assert not unknown, f"variables the chart sets that voxgate does not read: {unknown}"


def test_values_config_has_one_key_per_server_setting() -> None:
    # The two derived settings come from containerPort and drain.graceSeconds.
    derived = {"VOXGATE_LISTEN", "VOXGATE_DRAIN_GRACE_S"}
    keys = set(chart_values()["config"])
    server_env = {spec.env for spec in config.SETTINGS if spec.env}
    missing, unknown = sorted(server_env - derived - keys), sorted(keys - server_env)
    assert not missing, (
        f"server settings missing from values.yaml config: (and values.schema.json): {missing}"
    )
    assert not unknown, f"values.yaml config: entries voxgate does not read: {unknown}"
    assert not keys & derived, "set through containerPort / drain.graceSeconds, not config:"


def test_default_configmap_loads_as_the_servers_own_defaults() -> None:
    data = _configmap_data(render())
    settings = config.load(data)  # raises ConfigError naming a variable the server rejects
    assert settings.listen == "0.0.0.0:50051"
    assert dataclasses.replace(settings, listen=config.Settings().listen) == config.load({})


def test_overridden_config_reaches_the_server() -> None:
    settings = config.load(_configmap_data(render(VALUE_SETS["everything"])))
    assert (settings.pool_max_size, settings.pool_ready_min, settings.log_level) == (32, 8, "DEBUG")
    assert (settings.listen, settings.drain_grace_s) == ("0.0.0.0:6000", 45.5)


def test_otel_variables_point_at_the_collector_with_pod_and_namespace() -> None:
    rendered = render(VALUE_SETS["otel-on"])
    env = rendered.environment()
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    assert env["OTEL_SERVICE_NAME"]["value"] == "demo-voxgate"
    assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_always_on"
    for name, field in DOWNWARD_ENV.items():
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": field}}
    attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(","))
    assert attributes == {
        "k8s.pod.name": "$(K8S_POD_NAME)",
        "k8s.namespace.name": "$(K8S_NAMESPACE_NAME)",
        "k8s.deployment.name": "demo-voxgate",
        "deployment.environment.name": "staging",
    }
    # $(VAR) expands only variables defined earlier in the container's env list.
    order = [entry["name"] for entry in rendered.container()["env"]]
    assert max(order.index(name) for name in DOWNWARD_ENV) < order.index("OTEL_RESOURCE_ATTRIBUTES")


def test_otel_off_sets_no_otel_variable() -> None:
    assert [name for name in render().environment() if name.startswith(OTEL_PREFIX)] == []


# --- probes, ports, draining -----------------------------------------------------------------


@pytest.mark.parametrize("value_set", ["default", "everything"])
def test_probes_are_native_grpc_health_checks_on_the_grpc_port(value_set: str) -> None:
    values = VALUE_SETS[value_set]
    rendered = render(values)
    container = rendered.container()
    port = values.get("containerPort", chart_values()["containerPort"])
    assert container["ports"] == [{"name": "grpc", "containerPort": port, "protocol": "TCP"}]
    # Numeric port (Kubernetes gRPC probes take no port names); "" is voxgate's readiness (pool
    # warm, upstream accepting us), LIVENESS_SERVICE only says the process serves.
    for probe, service in (("startupProbe", ""), ("readinessProbe", ""), ("livenessProbe", LIVENESS_SERVICE)):
        assert container[probe]["grpc"] == {"port": port, "service": service}, probe
        assert set(container[probe]) & {"httpGet", "tcpSocket", "exec"} == set(), probe
    assert config.load(rendered.environment_values()).listen == f"0.0.0.0:{port}"


def test_startup_probe_gives_the_pool_time_to_prewarm() -> None:
    startup = render().container()["startupProbe"]
    # ceil(pool size / concurrent connects) waves, each allowed VOXGATE_CONNECT_TIMEOUT_S: the slowest
    # prewarm that still succeeds.
    settings = config.load(_configmap_data(render()))
    worst_prewarm_s = math.ceil(settings.pool_max_size / settings.pool_max_concurrent_connects) * (
        settings.connect_timeout_s
    )
    assert startup["periodSeconds"] * startup["failureThreshold"] > worst_prewarm_s


@pytest.mark.parametrize("value_set", ["default", "everything"])
def test_termination_grace_exceeds_drain_plus_prestop(value_set: str) -> None:
    rendered = render(VALUE_SETS[value_set])
    grace_period = _pod_spec(rendered)["terminationGracePeriodSeconds"]
    assert isinstance(grace_period, int)
    drain_s = config.load(_configmap_data(rendered)).drain_grace_s
    command = rendered.container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    assert grace_period > drain_s + pre_stop_s


@pytest.mark.parametrize("value_set", ["default", "headless-on"])
def test_services_name_the_port_grpc_with_app_protocol_grpc(value_set: str) -> None:
    rendered = render(VALUE_SETS[value_set])
    services = [doc for doc in rendered.all() if doc["kind"] == "Service"]
    for service in services:
        (port,) = service["spec"]["ports"]
        assert (port["name"], port["appProtocol"], port["targetPort"]) == ("grpc", "grpc", "grpc")
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == (1 if value_set == "headless-on" else 0)
    if headless:
        assert headless[0]["metadata"]["name"] == "demo-voxgate-headless"
        assert (
            headless[0]["spec"]["selector"] == rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
        )


def test_hpa_off_pins_the_replica_count_and_hpa_on_leaves_it_to_the_autoscaler() -> None:
    off = render(VALUE_SETS["hpa-off"])
    assert off.find("HorizontalPodAutoscaler") is None
    assert off.get("Deployment")["spec"]["replicas"] == 3
    on = render()
    assert "replicas" not in on.get("Deployment")["spec"]
    target = on.get("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", on.get("Deployment")["metadata"]["name"])


# --- hardening -------------------------------------------------------------------------------


def test_pods_are_hardened() -> None:
    rendered = render()
    pod = _pod_spec(rendered)
    container = rendered.container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    # The only writable path: /tmp, an emptyDir.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "emptyDir" in pod["volumes"][0]


def test_topology_spread_selects_this_releases_pods() -> None:
    assert "topologySpreadConstraints" not in _pod_spec(render())
    rendered = render(VALUE_SETS["everything"])
    (constraint,) = _pod_spec(rendered)["topologySpreadConstraints"]
    assert constraint["whenUnsatisfiable"] == "DoNotSchedule"
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    selector = rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
    assert constraint["labelSelector"]["matchLabels"] == selector


# --- documentation ---------------------------------------------------------------------------


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and key not in {"resources", "podSecurityContext", "securityContext"}
        ):
            keys |= _leaf_keys(value, path + ".")
        else:
            keys.add(path)
    return keys


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, flags=re.MULTILINE))
    assert documented == _leaf_keys(chart_values())


def test_the_account_task_start_rate_is_split_across_every_process() -> None:
    # 6 starts/s for the account, 3 pods of 2 workers: 1 per process, whatever config: says.
    values = {
        "taskStartRate": {"accountPerSecond": 6},
        "autoscaling": {"enabled": False},
        "replicaCount": 3,
        "config": {"VOXGATE_WORKERS": 2, "VOXGATE_TASK_START_RATE": 5},
    }
    assert config.load(_configmap_data(render(values))).task_start_rate == 1.0
    # With the autoscaler, the most pods it may run.
    hpa = {"taskStartRate": {"accountPerSecond": 3}, "autoscaling": {"enabled": True, "maxReplicas": 10}}
    assert config.load(_configmap_data(render(hpa))).task_start_rate == 0.3
    assert config.load(_configmap_data(render())).task_start_rate == 0
