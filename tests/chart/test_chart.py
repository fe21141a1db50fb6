"""The Helm chart: strict lint, every manifest valid for two Kubernetes versions, and the facts that matter.

Rendered by the real Helm library (helm-python-sdk: Helm's Go SDK); validated by kubernetes-validate
against the Kubernetes OpenAPI schemas it bundles, in strict mode (unknown fields are errors).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from helm_chart import CHART_DIR, VALUE_SETS, Rendered, chart_values, lint, render, render_error
from voxgate import config
from voxgate.app import LIVENESS_SERVICE

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: native gRPC probes are GA in
# 1.27) and the newest the bundled schemas know.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

# Custom resources the chart can render, validated against their CRD's schema (vendored: see the file).
CRDS = Path(__file__).resolve().parent / "crds"
# A DNS label (RFC 1123): what every object name here must be.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

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


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it to a typed client: an object with
    declared properties takes no other field (the server would prune it silently; here it fails)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    group, _, version = api_version.partition("/")
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and (crd["spec"]["group"], crd["spec"]["names"]["kind"]) == (group, kind):
                (served,) = (v for v in crd["spec"]["versions"] if v["name"] == version and v["served"])
                return jsonschema.Draft7Validator(_strict(copy.deepcopy(served["schema"]["openAPIV3Schema"])))
    raise AssertionError(f"no CRD for {api_version} {kind} in {CRDS}")


def _validate(doc: dict[str, Any], kube_version: str) -> None:
    if "." in doc["apiVersion"].partition("/")[0]:
        # A custom resource (keda.sh/...): its CRD's schema, whatever the Kubernetes version.
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _crd_validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)
        ]
        assert not errors, errors
        return
    # Raises ValidationError (unknown field, wrong type) or SchemaNotFoundError (unknown kind
    # or apiVersion for this Kubernetes version): both fail the test.
    kubernetes_validate.validate(doc, kube_version, strict=True)


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
        _validate(doc, kube_version)


def test_the_crd_check_refuses_what_the_api_server_would() -> None:
    scaled = copy.deepcopy(render(VALUE_SETS["keda"]).get("ScaledObject"))
    scaled["spec"]["minReplicas"] = 2  # the field is minReplicaCount
    with pytest.raises(AssertionError, match="minReplicas"):
        _validate(scaled, KUBE_VERSIONS[0])


def test_default_install_renders_these_objects_and_options_add_theirs() -> None:
    assert render().kinds() == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Pod",  # the `helm test` hook
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert render(VALUE_SETS["api-key-value"]).find("Secret") is not None
    assert render(VALUE_SETS["headless-on"]).kinds().count("Service") == 2
    keda = render(VALUE_SETS["keda"])
    assert keda.find("ScaledObject") is not None and keda.find("HorizontalPodAutoscaler") is None
    assert render({"helmTest": {"enabled": False}}).find("Pod") is None


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
        ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
        ({"extraEnv": [{"value": "x"}]}, "/extraEnv/0"),
        ({"extraEnv": {"GRPC_VERBOSITY": "ERROR"}}, "/extraEnv"),
        ({"sidecars": [{"name": "no-image"}]}, "/sidecars/0"),
        ({"autoscaling": {"scaleDownStabilizationSeconds": 300}}, "scaleDownStabilizationSeconds"),
        ({"autoscaling": {"behavior": {"scaleSideways": {}}}}, "scaleSideways"),
        ({"podAntiAffinityPreset": "strict"}, "/podAntiAffinityPreset"),
        ({"podDisruptionBudget": {"unhealthyPodEvictionPolicy": "Never"}}, "/podDisruptionBudget"),
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


# --- autoscaling on the pool -----------------------------------------------------------------


def test_cpu_is_the_default_metric_and_behavior_is_passed_through() -> None:
    hpa = render().get("HorizontalPodAutoscaler")["spec"]
    assert [metric["type"] for metric in hpa["metrics"]] == ["Resource"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["behavior"] == chart_values()["autoscaling"]["behavior"]
    custom = render(VALUE_SETS["pool-hpa"]).get("HorizontalPodAutoscaler")["spec"]
    assert custom["behavior"] == VALUE_SETS["pool-hpa"]["autoscaling"]["behavior"]
    assert (custom["minReplicas"], custom["maxReplicas"]) == (3, 12)


def test_pool_autoscaling_adds_a_pods_metric_of_pool_demand() -> None:
    metrics = render(VALUE_SETS["pool-hpa"]).get("HorizontalPodAutoscaler")["spec"]["metrics"]
    cpu, pool = metrics
    assert cpu["resource"]["name"] == "cpu"  # CPU stays: the autoscaler follows the larger proposal
    assert pool == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "voxgate_pool_utilization"},
            # A ratio per pod: 75 % of the pool is 0.75, written in milli-units.
            "target": {"type": "AverageValue", "averageValue": "750m"},
        },
    }


def test_keda_scales_on_cpu_and_the_releases_pool_demand_per_pod() -> None:
    values = VALUE_SETS["keda"]
    rendered = render(values)
    assert rendered.find("HorizontalPodAutoscaler") is None  # KEDA makes its own from this
    assert "replicas" not in rendered.get("Deployment")["spec"]
    spec = rendered.get("ScaledObject")["spec"]
    assert spec["scaleTargetRef"]["name"] == rendered.get("Deployment")["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)
    assert (
        spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        == chart_values()["autoscaling"]["behavior"]
    )
    cpu, pool = spec["triggers"]
    assert (cpu["type"], cpu["metricType"], cpu["metadata"]) == ("cpu", "Utilization", {"value": "70"})
    assert (pool["type"], pool["metricType"]) == ("prometheus", "AverageValue")
    assert pool["authenticationRef"] == {"name": "prometheus-auth"}
    # AverageValue divides the query's total by the threshold: one pod carries its pools (20 x 2
    # workers) at 80 %.
    assert float(pool["metadata"]["threshold"]) == pytest.approx(20 * 2 * 0.80)
    query = pool["metadata"]["query"]
    matchers = 'k8s_namespace_name="speech",k8s_deployment_name="demo-voxgate"'
    assert f'voxgate_pool_connection_count{{voxgate_pool_connection_state="used",{matchers}}}' in query
    assert f"voxgate_pool_connection_pending_requests{{{matchers}}}" in query
    # The labels the query selects on are resource attributes the chart itself sets.
    attributes = rendered.environment()["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert "k8s.deployment.name=demo-voxgate" in attributes and "k8s.namespace.name=" in attributes
    own = render(
        {
            **values,
            "keda": {**values["keda"], "prometheus": {"serverAddress": "http://p:9090", "query": "sum(up)"}},
        }
    )
    assert own.get("ScaledObject")["spec"]["triggers"][1]["metadata"]["query"] == "sum(up)"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}},
            "autoscaling: minReplicas (5) is greater than maxReplicas (3)",
        ),
        ({"autoscaling": {"pool": {"enabled": True}}}, "set otel.enabled=true"),
        (
            {"otel": {"enabled": True}, "autoscaling": {"enabled": False, "pool": {"enabled": True}}},
            "autoscaling.pool.enabled needs autoscaling.enabled=true",
        ),
        ({"keda": {"enabled": True}}, "set otel.enabled=true"),
        (
            {"otel": {"enabled": True}, "keda": {"enabled": True}, "autoscaling": {"enabled": False}},
            "keda.enabled needs autoscaling.enabled=true",
        ),
        (
            {
                "otel": {"enabled": True},
                "keda": {"enabled": True},
                "autoscaling": {"pool": {"enabled": True}},
            },
            "enable one of them",
        ),
        (
            {"podLabels": {"app.kubernetes.io/name": "other"}},
            "podLabels: app.kubernetes.io/name is a selector label",
        ),
        (
            {"commonLabels": {"app.kubernetes.io/instance": "x"}},
            "commonLabels: app.kubernetes.io/instance is a selector label",
        ),
        (
            {"extraEnv": [{"name": "VOXGATE_POOL_MAX_SIZE", "value": "4"}]},
            "extraEnv: VOXGATE_POOL_MAX_SIZE is set by the chart",
        ),
        (
            {"extraEnv": [{"name": "DASHSCOPE_API_KEY", "value": "sk-x"}]},
            "extraEnv: DASHSCOPE_API_KEY is set by the chart",
        ),
    ],
)
def test_inconsistent_values_fail_the_render_with_the_fix(values: dict[str, Any], message: str) -> None:
    assert message in render_error(values)


# --- extension points and pinning ------------------------------------------------------------


def test_extension_points_reach_the_pod() -> None:
    values = VALUE_SETS["extensions"]
    rendered = render(values)
    pod = _pod_spec(rendered)
    container = rendered.container()
    env = container["env"]
    assert env[-2:] == values["extraEnv"]
    # Listed first: for a name in two sources the last wins, and the chart's settings must.
    assert container["envFrom"][0] == {"secretRef": {"name": "proxy-settings"}}
    assert container["envFrom"][-1]["configMapRef"]["name"] == rendered.get("ConfigMap")["metadata"]["name"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, *values["extraVolumeMounts"]]
    assert pod["volumes"][1:] == values["extraVolumes"]
    assert pod["initContainers"] == values["initContainers"]
    assert [c["name"] for c in pod["containers"]] == ["voxgate", "log-shipper"]
    deployment = rendered.get("Deployment")["spec"]
    assert deployment["revisionHistoryLimit"] == 3
    assert deployment["strategy"] == values["strategy"]


def test_common_labels_and_annotations_are_on_every_object_and_pod_labels_on_the_pods() -> None:
    rendered = render(VALUE_SETS["extensions"])
    for doc in rendered.all():
        assert doc["metadata"]["labels"]["team"] == "speech", doc["kind"]
        assert doc["metadata"]["annotations"]["owner"] == "speech-platform@example.com", doc["kind"]
    template = rendered.get("Deployment")["spec"]["template"]["metadata"]
    assert template["labels"]["sidecar.istio.io/inject"] == "false"
    assert template["labels"]["team"] == "speech"
    selector = rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["labels"].items()


def test_the_default_update_strategy_keeps_capacity_while_new_pods_warm() -> None:
    strategy = render().get("Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_a_digest_wins_over_the_tag() -> None:
    assert render().container()["image"] == "voxgate:0.1.0"  # the chart's appVersion
    digest = VALUE_SETS["extensions"]["image"]["digest"]
    image = render(VALUE_SETS["extensions"]).container()["image"]
    assert image == f"registry.example.com/voxgate@{digest}"


# --- day two -----------------------------------------------------------------------------------


def test_the_budget_lets_unready_pods_be_evicted() -> None:
    # Every pod unready (DashScope rejecting the key) must not block node drains.
    assert render().get("PodDisruptionBudget")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_pods_prefer_distinct_nodes_by_default_and_affinity_replaces_the_preset() -> None:
    rendered = render()
    selector = rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
    (term,) = _pod_spec(rendered)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    hard = _pod_spec(render(VALUE_SETS["extensions"]))["affinity"]["podAntiAffinity"]
    assert list(hard) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    assert "affinity" not in _pod_spec(render({"podAntiAffinityPreset": ""}))
    own = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["speech"]}]}
                ]
            }
        }
    }
    assert _pod_spec(render({"affinity": own}))["affinity"] == own


def test_a_new_key_value_or_setting_rolls_the_pods() -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        annotations = render(values).get("Deployment")["spec"]["template"]["metadata"]["annotations"]
        return {k: v for k, v in annotations.items() if k.startswith("checksum/")}

    one = checksums({"apiKey": {"value": "sk-one-0123456789"}})
    two = checksums({"apiKey": {"value": "sk-two-0123456789"}})
    assert (
        one["checksum/secret"] != two["checksum/secret"] and one["checksum/config"] == two["checksum/config"]
    )
    assert (
        checksums({"config": {"VOXGATE_LOG_LEVEL": "DEBUG"}})["checksum/config"]
        != checksums({})["checksum/config"]
    )


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_object_name_is_a_dns_label(value_set: str) -> None:
    for doc in render(VALUE_SETS[value_set]).all():
        assert DNS_LABEL.match(doc["metadata"]["name"]), (doc["kind"], doc["metadata"]["name"])


def test_long_names_keep_their_suffix_within_63_characters() -> None:
    names = {doc["metadata"]["name"] for doc in render(VALUE_SETS["long-names"]).all()}
    assert "x" * 63 in names
    for suffix in ("-headless", "-test"):  # the full name gives way, the suffix stays
        assert "x" * (63 - len(suffix)) + suffix in names


# --- helm test ---------------------------------------------------------------------------------


def test_the_helm_test_pod_is_a_hardened_hook_on_the_releases_service_and_image() -> None:
    rendered = render(VALUE_SETS["extensions"])
    pod = rendered.get("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # Not one of the release's serving pods: no Service, budget or spread counts it.
    selector = rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == _pod_spec(rendered)["securityContext"]
    service = rendered.get("Service")
    target = f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    (health,) = spec["initContainers"]
    (stats,) = spec["containers"]
    assert health["command"][-1] == target and "HealthStub" in health["command"][2]
    assert stats["command"] == ["voxgate", "stats", "--server", target]
    for container in (health, stats):
        assert container["image"] == rendered.container()["image"]  # pinned by digest here
        assert container["securityContext"] == rendered.container()["securityContext"]
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


# --- documentation ---------------------------------------------------------------------------


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and key not in {"resources", "podSecurityContext", "securityContext", "strategy", "behavior"}
        ):
            keys |= _leaf_keys(value, path + ".")
        else:
            keys.add(path)
    return keys


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text().partition("\n## Values\n")[2]
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, flags=re.MULTILINE))
    assert documented == _leaf_keys(chart_values())
