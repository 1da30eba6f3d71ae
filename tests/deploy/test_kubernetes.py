"""The Kubernetes manifests, rendered by kustomize and checked offline: every object against
the Kubernetes schemas (kubernetes-validate, strict), the KEDA ScaledObjects against the
partitions and consumer groups they scale on, and the promises of each Deployment."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from unionhub_contracts import TOPICS
from unionhub_runtime.auth import AuthSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
SETTINGS = {"membership": MembershipSettings, "evaluation": EvaluationSettings, "feedback": FeedbackSettings}
RENDERED = [
    "services/membership",
    "services/evaluation",
    "services/feedback",
    "platform",
    "overlays/staging",
    "overlays/production",
]
PARTITIONS = {t.name: t.partitions for t in TOPICS}

# The part of KEDA's ScaledObject CRD (keda.sh/v1alpha1) these manifests use.
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer"},
                "cooldownPeriod": {"type": "integer"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "kafka"},
                            "metadata": {
                                "type": "object",
                                "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def kustomize_binary() -> str:
    for candidate in (ROOT / ".venv" / "bin" / "kustomize", shutil.which("kustomize")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("kustomize is missing: `make tools` installs it (go install sigs.k8s.io/kustomize/kustomize/v5)")


def render(path: str) -> list[dict[str, Any]]:
    result = subprocess.run([kustomize_binary(), "build", str(K8S / path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {path: render(path) for path in RENDERED}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("path", RENDERED)
def test_every_object_is_valid_against_the_kubernetes_schema(rendered: dict, path: str) -> None:
    for doc in rendered[path]:
        if doc["kind"] == "ScaledObject":
            jsonschema.validate(doc, SCALED_OBJECT)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_a_broken_object(rendered: dict) -> None:
    deployment = copy.deepcopy(of_kind(rendered["services/membership"], "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = copy.deepcopy(of_kind(rendered["services/membership"], "ScaledObject")[0])
    scaled["spec"]["maxReplicas"] = 3  # misspelt: KEDA would ignore it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_service_deploys_alone_with_everything_it_needs(rendered: dict, service: str) -> None:
    docs = rendered[f"services/{service}"]
    # No Secret is rendered: no password has a default (the operator creates <service>-secrets).
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Job", "ScaledObject", "Service"]
    (deployment,) = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"ghcr.io/unionhub/{service}:1.0.0"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and container["resources"]["limits"]
    # Settings reach the container under names the service reads, on the port the probes use.
    (config,) = of_kind(docs, "ConfigMap")
    assert container["envFrom"] == [
        {"configMapRef": {"name": config["metadata"]["name"]}},
        {"secretRef": {"name": f"{service}-secrets", "optional": False}},
    ]
    prefix = SETTINGS[service].model_config["env_prefix"]
    for name in config["data"]:
        assert name.startswith((prefix, "KAFKA_", "UNIONHUB_AUTH_")), name
        if name.startswith(prefix):
            assert name.removeprefix(prefix).lower() in SETTINGS[service].model_fields, name
        if name.startswith("UNIONHUB_AUTH_"):
            assert name.removeprefix("UNIONHUB_AUTH_").lower() in AuthSettings.model_fields, name
    assert config["data"]["UNIONHUB_AUTH_JWKS_URL"].startswith("https://")  # keys only over TLS
    assert int(config["data"][f"{prefix}HTTP_PORT"]) == container["ports"][0]["containerPort"]
    assert config["data"][f"{prefix}HTTP_HOST"] == "0.0.0.0"  # reachable from the kubelet and the Service
    (job,) = of_kind(docs, "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    (svc,) = of_kind(docs, "Service")
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"]["app.kubernetes.io/name"] == service


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_keda_scales_on_the_groups_the_service_consumes_and_never_past_the_partitions(
    rendered: dict, service: str
) -> None:
    docs = rendered[f"services/{service}"]
    (scaled,) = of_kind(docs, "ScaledObject")
    (deployment,) = of_kind(docs, "Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    group_prefix = SETTINGS[service]().consumer_group
    topics = []
    for trigger in scaled["spec"]["triggers"]:
        topic = trigger["metadata"]["topic"]
        assert topic in PARTITIONS, topic
        assert trigger["metadata"]["consumerGroup"] == f"{group_prefix}.{topic}"  # the service's group name
        topics.append(topic)
    assert scaled["spec"]["maxReplicaCount"] <= min(PARTITIONS[t] for t in topics)
    for overlay in ("overlays/staging", "overlays/production"):
        for other in of_kind(rendered[overlay], "ScaledObject"):
            assert other["spec"]["minReplicaCount"] <= other["spec"]["maxReplicaCount"] <= 6


def test_the_overlays_put_everything_in_one_namespace_and_production_uses_sasl_ssl(rendered: dict) -> None:
    for overlay, namespace in (("overlays/staging", "unionhub-staging"), ("overlays/production", "unionhub")):
        docs = rendered[overlay]
        assert {d["metadata"].get("namespace") for d in docs} == {namespace}
        assert len(of_kind(docs, "Deployment")) == 3 and len(of_kind(docs, "ScaledObject")) == 3
    for config in of_kind(rendered["overlays/production"], "ConfigMap"):
        if config["metadata"]["name"].startswith(tuple(SETTINGS)):
            assert config["data"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            assert config["data"]["KAFKA_SASL_USERNAME"] == config["metadata"]["name"].split("-")[0]
