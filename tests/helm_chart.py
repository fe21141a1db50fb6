"""Render and lint ``helm/voxgate`` with the real Helm library (helm-python-sdk, Helm's Go SDK).

Shared by the chart tests. Renders are cached per value set: the chart is read-only during a run.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART_DIR = Path(__file__).resolve().parents[1] / "helm" / "voxgate"
RELEASE = "demo"
NAMESPACE = "speech"

# A user's extra container (initContainers, sidecars), pinned and hardened.
_EXTRA_CONTAINER: dict[str, Any] = {
    "image": "registry.example.com/helper@sha256:" + "cd" * 32,
    "imagePullPolicy": "Always",
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
    "securityContext": {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
}

# Named value sets every render, lint and schema validation runs over.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    # With a key, caller authentication (or VOXGATE_AUTH=none) is required: docs/security.md.
    "api-key-value": {
        "apiKey": {"value": "sk-chart-test-inline-0123456789"},
        "security": {"callers": {"existingSecret": "voxgate-callers"}},
    },
    "existing-secret": {
        "apiKey": {"existingSecret": "dashscope-key", "secretKey": "api-key"},
        "config": {"VOXGATE_AUTH": "none"},
    },
    "hpa-off": {
        "autoscaling": {"enabled": False},
        "replicaCount": 3,
        "podDisruptionBudget": {"enabled": False},
    },
    "headless-on": {"headless": {"enabled": True}},
    "otel-on": {
        "otel": {
            "enabled": True,
            "endpoint": "http://otel-collector.observability:4317",
            "resourceAttributes": {"deployment.environment.name": "staging"},
            "extraEnv": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
        }
    },
    "security": {
        "apiKey": {"existingSecret": "dashscope-key"},
        "security": {
            "tls": {"enabled": True, "secretName": "voxgate-tls"},
            "mutualTls": {"enabled": True, "caSecret": "callers-ca", "caKey": "bundle.pem"},
            "callers": {"existingSecret": "voxgate-callers", "secretKey": "callers.toml"},
            "networkPolicy": {
                "enabled": True,
                "ingressFrom": [{"namespaceSelector": {"matchLabels": {"voxgate-client": "true"}}}],
            },
        },
    },
    "everything": {
        "apiKey": {"existingSecret": "dashscope-key"},
        "headless": {"enabled": True},
        "otel": {"enabled": True},
        "topologySpread": {"enabled": True, "whenUnsatisfiable": "DoNotSchedule"},
        "containerPort": 6000,
        "service": {"port": 443},
        "drain": {"graceSeconds": 45.5, "preStopSeconds": 10, "shutdownSlackSeconds": 3},
        "config": {
            "VOXGATE_POOL_MAX_SIZE": 32,
            "VOXGATE_POOL_READY_MIN": 8,
            "VOXGATE_LOG_LEVEL": "DEBUG",
            "VOXGATE_AUTH": "none",  # a mesh authenticates callers ("security" has the chart's own auth)
        },
    },
    "pool-hpa": {
        "otel": {"enabled": True},
        "autoscaling": {
            "minReplicas": 3,
            "maxReplicas": 12,
            "pool": {"enabled": True, "targetUtilizationPercentage": 75},
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 30}],
                },
                "scaleDown": {"stabilizationWindowSeconds": 600},
            },
        },
    },
    "keda": {
        "otel": {"enabled": True},
        "keda": {
            "enabled": True,
            "prometheus": {
                "serverAddress": "http://prometheus.monitoring:9090",
                "authenticationRef": "prometheus-auth",
            },
        },
        "autoscaling": {"minReplicas": 2, "maxReplicas": 8, "pool": {"targetUtilizationPercentage": 80}},
        "config": {"VOXGATE_POOL_MAX_SIZE": 20, "VOXGATE_WORKERS": 2},
    },
    # Every extension point at once, a pinned image, and no default spread but a hard one.
    "extensions": {
        "image": {
            "repository": "registry.example.com/voxgate",
            "tag": "0.1.0",
            "digest": "sha256:" + "ab" * 32,
        },
        "commonLabels": {"team": "speech", "app.kubernetes.io/part-of": "voice"},
        "commonAnnotations": {"owner": "speech-platform@example.com"},
        "podLabels": {"sidecar.istio.io/inject": "false"},
        "revisionHistoryLimit": 3,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "podAntiAffinityPreset": "hard",
        "extraEnv": [
            {"name": "GRPC_VERBOSITY", "value": "ERROR"},
            {"name": "SSL_CERT_FILE", "value": "/etc/ssl/corp/ca-bundle.pem"},
        ],
        "extraEnvFrom": [{"secretRef": {"name": "proxy-settings"}}],
        "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca-bundle"}}],
        "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
        # Hardened as the chart's own container is, so that the scanner judges the chart, not them.
        "initContainers": [{"name": "wait-for-proxy", "command": ["sh", "-c", "true"], **_EXTRA_CONTAINER}],
        "sidecars": [
            {
                "name": "log-shipper",
                "ports": [{"name": "http", "containerPort": 2020}],
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                "readinessProbe": {"httpGet": {"path": "/api/v1/health", "port": "http"}},
                **_EXTRA_CONTAINER,
            },
        ],
    },
    # Prometheus scrapes the pods by annotation; OTLP stays off.
    "metrics-scrape": {"metrics": {"enabled": True}},
    # Everything for the Prometheus Operator and Grafana, beside OTLP, with two workers (two ports).
    "monitoring": {
        "otel": {"enabled": True},
        "config": {"VOXGATE_WORKERS": 2},
        "metrics": {
            "enabled": True,
            "port": 9100,
            "podAnnotations": False,
            "serviceMonitor": {
                "enabled": True,
                "interval": "30s",
                "labels": {"release": "kube-prometheus-stack"},
            },
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "dashboard": {"enabled": True, "annotations": {"grafana_folder": "voxgate"}},
        },
    },
    # The longest names a release can give: every object name must still fit 63 characters.
    "long-names": {"fullnameOverride": "x" * 63, "headless": {"enabled": True}},
}


@dataclass(frozen=True)
class Rendered:
    """One release's manifests, parsed: ``get(kind, name)`` and ``all()``."""

    documents: tuple[dict[str, Any], ...]
    notes: str

    def all(self) -> Iterator[dict[str, Any]]:
        yield from self.documents

    def kinds(self) -> list[str]:
        return sorted(doc["kind"] for doc in self.documents)

    def find(self, kind: str, name: str | None = None) -> dict[str, Any] | None:
        for doc in self.documents:
            if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
                return doc
        return None

    def get(self, kind: str, name: str | None = None) -> dict[str, Any]:
        doc = self.find(kind, name)
        if doc is None:
            raise AssertionError(f"no {kind} {name or ''} rendered; have {self.kinds()}")
        return doc

    def container(self) -> dict[str, Any]:
        """The voxgate container (sidecars may sit next to it)."""
        containers: list[dict[str, Any]] = self.get("Deployment")["spec"]["template"]["spec"]["containers"]
        (container,) = (c for c in containers if c["name"] == "voxgate")
        return container

    def environment(self) -> dict[str, dict[str, Any]]:
        """Every variable the container gets, by name: ConfigMap entries (envFrom, as ``{"value": ...}``)
        and the container's own ``env`` entries (``value`` or ``valueFrom``)."""
        container = self.container()
        variables: dict[str, dict[str, Any]] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" not in source or self.find("ConfigMap", source["configMapRef"]["name"]) is None:
                continue  # extraEnvFrom: a source outside the chart
            configmap = self.get("ConfigMap", source["configMapRef"]["name"])
            variables.update({name: {"value": value} for name, value in configmap["data"].items()})
        for entry in container.get("env", []):
            assert entry["name"] not in variables, f"{entry['name']} is set twice"
            variables[entry["name"]] = entry
        return variables

    def environment_values(self) -> dict[str, str]:
        """The variables with a literal value (not from a Secret or the downward API)."""
        return {name: entry["value"] for name, entry in self.environment().items() if "value" in entry}

    def text(self) -> str:
        """Every manifest and NOTES.txt as one string, for "never appears" checks."""
        return json.dumps(self.documents) + self.notes


def render(values: dict[str, Any] | None = None) -> Rendered:
    """Render the chart as ``helm template demo --namespace speech`` would (schema checked)."""
    return _render_cached(json.dumps(values or {}, sort_keys=True))


@functools.cache
def _render_cached(values_json: str) -> Rendered:
    with helm.Chart.load(CHART_DIR) as chart:
        manifests = chart.render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE, is_install=True)
    documents: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(tuple(documents), notes)


def render_error(values: dict[str, Any]) -> str:
    """Render ``values`` expecting Helm to refuse them; return its message."""
    with helm.Chart.load(CHART_DIR) as chart:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as exc:
            return str(exc)
    raise AssertionError(f"the chart rendered values it should refuse: {values}")


def lint(values: dict[str, Any], kube_version: str) -> dict[str, Any]:
    """``helm lint --strict`` (warnings count as errors) against ``kube_version``."""
    return helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=kube_version)


def chart_values() -> dict[str, Any]:
    """The chart's values.yaml, as Helm reads it."""
    with helm.Chart.load(CHART_DIR) as chart:
        return chart.values
