"""The Kubernetes manifests, rendered by kustomize and checked offline: every object against
the Kubernetes schemas (kubernetes-validate, strict) or, for the operators' kinds (KEDA,
External Secrets), the part of their CRDs these manifests use; the project's own rules across
objects (deploy/k8s/render.py: probes, resources, a PodDisruptionBudget and a NetworkPolicy per
service, egress to the ports the config names, no placeholder Secret, no spec.replicas beside a
ScaledObject, Kafka auth, Job names carrying their image's version, the stop inside the grace
period) on every kustomization, and the image references it reads (tag, digest) and names the
migration Jobs after; the KEDA ScaledObjects against the partitions
and consumer groups they scale on, and the promises of each Deployment. No cluster runs here:
what an API server, KEDA or a CNI would do with them is not exercised."""

from __future__ import annotations

import base64
import copy
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from tests.deploy.test_monitoring_files import MONITORING_CRDS
from unionhub_contracts import TOPICS
from unionhub_runtime import cli, shutdown
from unionhub_runtime.auth import AuthSettings
from unionhub_runtime.service import Service

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
    "examples/external-secrets",
]
PARTITIONS = {t.name: t.partitions for t in TOPICS}

REF = {"type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False}
REF["properties"] = {k: {"type": "string"} for k in REF["required"]}
# The parts of the operators' CRDs these manifests use: KEDA (keda.sh/v1alpha1) and the
# External Secrets Operator (external-secrets.io/v1). A misspelt field fails here, as it
# would be ignored (or refused) by the operator.
CRDS: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers", "fallback"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                    },
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer"},
                    "cooldownPeriod": {"type": "integer"},
                    "fallback": {
                        "type": "object",
                        "required": ["failureThreshold", "replicas"],
                        "additionalProperties": False,
                        "properties": {
                            "failureThreshold": {"type": "integer", "minimum": 1},
                            "replicas": {"type": "integer", "minimum": 1},
                        },
                    },
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "type": {"const": "kafka"},
                                "metadata": {
                                    "type": "object",
                                    "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
                                    "additionalProperties": {"type": "string"},
                                },
                                "authenticationRef": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {"name": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {"type": "array", "items": REF},
                    "configMapTargetRef": {"type": "array", "items": REF},
                },
            },
        },
    },
    "ExternalSecret": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "external-secrets.io/v1"},
            "spec": {
                "type": "object",
                "required": ["secretStoreRef", "target", "data"],
                "additionalProperties": False,
                "properties": {
                    "refreshInterval": {"type": "string"},
                    "secretStoreRef": {
                        "type": "object",
                        "required": ["kind", "name"],
                        "properties": {"kind": {"enum": ["SecretStore", "ClusterSecretStore"]}},
                    },
                    "target": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
                            "deletionPolicy": {"enum": ["Retain", "Delete", "Merge"]},
                        },
                    },
                    "data": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["secretKey", "remoteRef"],
                            "additionalProperties": False,
                            "properties": {
                                "secretKey": {"type": "string"},
                                "remoteRef": {
                                    "type": "object",
                                    "required": ["key"],
                                    "additionalProperties": False,
                                    "properties": {"key": {"type": "string"}, "property": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
CRDS.update(MONITORING_CRDS)  # ServiceMonitor, PrometheusRule (deploy/k8s/monitoring)
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unionhub_k8s_render", K8S / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RULES = load_render()


def render(path: str) -> list[dict[str, Any]]:
    if not (ROOT / ".venv" / "bin" / "kustomize").exists():
        pytest.fail("kustomize is missing: `make tools` installs it (go install sigs.k8s.io/kustomize/kustomize/v5)")
    return RULES.render(K8S / path)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {path: render(path) for path in RENDERED}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return found


def job_image(job: str, image: str) -> Any:
    """An edit giving the Job `job`'s container the image `image`."""
    return edit(lambda d: named(d, "Job", job)["spec"]["template"]["spec"]["containers"][0].update(image=image))


@pytest.mark.parametrize("path", RENDERED)
def test_every_object_is_valid_against_the_kubernetes_schema(rendered: dict, path: str) -> None:
    for doc in rendered[path]:
        if doc["kind"] in CRDS:
            jsonschema.validate(doc, CRDS[doc["kind"]])
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
        jsonschema.validate(scaled, CRDS["ScaledObject"])
    auth = copy.deepcopy(of_kind(rendered["overlays/production"], "TriggerAuthentication")[0])
    auth["spec"]["secretTargetRef"][0]["secret"] = auth["spec"]["secretTargetRef"][0].pop("name")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(auth, CRDS["TriggerAuthentication"])


@pytest.mark.parametrize("path", RENDERED)
def test_every_kustomization_keeps_the_projects_rules_across_objects(rendered: dict, path: str) -> None:
    assert RULES.problems(rendered[path]) == []


def deployment_of(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return named(docs, "Deployment", f"{service}-app")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {
        item["name"]: item.get("valueFrom", {}).get("secretKeyRef") or item.get("value") for item in container["env"]
    }


def with_secret(docs: list[dict[str, Any]], value: str) -> list[dict[str, Any]]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "membership-extra"}}
    return [*docs, {**secret, "data": {"PASSWORD": base64.b64encode(value.encode()).decode()}}]


def set_replicas(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployment_of(docs, "membership")["spec"]["replicas"] = 2
    return docs


def drop(kind: str, name: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda docs: [d for d in docs if (d["kind"], d["metadata"]["name"]) != (kind, name)]


def edit(change: Callable[[list[dict[str, Any]]], object]) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def apply(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        change(docs)
        return docs

    return apply


def container(docs: list[dict[str, Any]], service: str = "membership") -> dict[str, Any]:
    return deployment_of(docs, service)["spec"]["template"]["spec"]["containers"][0]


def topics_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (job,) = [j for j in of_kind(docs, "Job") if j["metadata"]["name"].startswith("kafka-topics-")]
    return job


def config_of_job(docs: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, Any]:
    ref = workload["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    return named(docs, "ConfigMap", ref)


def config_of(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return config_of_job(docs, deployment_of(docs, service))


BREAKAGES = {
    "a placeholder Secret": (lambda d: with_secret(d, "CHANGE_ME"), "placeholder"),
    "a placeholder in angle brackets": (lambda d: with_secret(d, "<your password>"), "placeholder"),
    "spec.replicas beside a ScaledObject": (set_replicas, "spec.replicas"),
    "no PodDisruptionBudget": (drop("PodDisruptionBudget", "membership-app"), "PodDisruptionBudgets"),
    "no NetworkPolicy for a service": (drop("NetworkPolicy", "membership-app"), "NetworkPolicy"),
    "no NetworkPolicy for the topics Job": (drop("NetworkPolicy", "kafka-topics"), "NetworkPolicy"),
    "no readiness probe": (edit(lambda d: container(d).pop("readinessProbe")), "readinessProbe"),
    "no memory limit": (edit(lambda d: container(d)["resources"].pop("limits")), "memory limit"),
    "no topology spread": (
        edit(lambda d: deployment_of(d, "membership")["spec"]["template"]["spec"].pop("topologySpreadConstraints")),
        "topology spread",
    ),
    "a PodDisruptionBudget selecting the migration Job": (
        edit(
            lambda d: named(d, "PodDisruptionBudget", "membership-app")["spec"]["selector"]["matchLabels"].pop(
                "app.kubernetes.io/component"
            )
        ),
        "selects a Job",
    ),
    "no SASL password for a service": (
        edit(lambda d: container(d).update(env=[e for e in container(d)["env"] if e["name"] != "KAFKA_SASL_PASSWORD"])),
        "KAFKA_SASL_PASSWORD",
    ),
    "KEDA reading the lag without SASL": (
        edit(lambda d: named(d, "ScaledObject", "evaluation-app")["spec"]["triggers"][2].pop("authenticationRef")),
        "without it",
    ),
    "a Secret nobody makes": (
        edit(lambda d: container(d)["env"][0]["valueFrom"]["secretKeyRef"].update(name="membership-secret")),
        "neither rendered nor made out of band",
    ),
    "a TriggerAuthentication on a ConfigMap key that is not there": (
        edit(
            lambda d: named(d, "TriggerAuthentication", "feedback-kafka")["spec"]["configMapTargetRef"][3].update(
                key="KAFKA_SASL_USER"
            )
        ),
        "has no key",
    ),
    "no fallback": (edit(lambda d: named(d, "ScaledObject", "feedback-app")["spec"].pop("fallback")), "fallback"),
    "a grace period shorter than the stop": (
        edit(
            lambda d: deployment_of(d, "feedback")["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30)
        ),
        "terminationGracePeriodSeconds",
    ),
    "no preStop": (edit(lambda d: container(d, "evaluation").pop("lifecycle")), "preStop"),
    "a new service image in the old migration Job": (
        job_image("membership-migrate-1-0-0", "ghcr.io/unionhub/membership:1.1.0"),
        "name it membership-migrate-1-1-0",
    ),
    "Kafka on a port no NetworkPolicy lets out": (
        edit(lambda d: config_of(d, "evaluation")["data"].update(KAFKA_BOOTSTRAP_SERVERS="kafka:9092,kafka-2:9094")),
        "Deployment/evaluation-app: reaches Kafka on port 9094",
    ),
    "the topics Job's Kafka on a port no NetworkPolicy lets out": (
        edit(
            lambda d: config_of_job(d, topics_job(d))["data"].update(KAFKA_BOOTSTRAP_SERVERS="kafka.example.net:19092")
        ),
        "reaches Kafka on port 19092",
    ),
    "a database port from config that no NetworkPolicy lets out": (
        edit(
            lambda d: container(d, "feedback").update(
                env=[
                    {"name": "FEEDBACK_DATABASE_URL", "value": "postgresql+asyncpg://feedback@pgbouncer:6432/feedback"}
                ]
            )
        ),
        "Deployment/feedback-app: reaches its database on port 6432",
    ),
    "a migration Job renamed by hand": (
        edit(
            lambda d: named(d, "Job", "membership-migrate-1-0-0")["metadata"].update(name="membership-migrate-latest")
        ),
        "Job/membership-migrate-latest: runs ghcr.io/unionhub/membership:1.0.0; name it membership-migrate-1-0-0",
    ),
    "a migration Job on an image pinned by neither tag nor digest": (
        job_image("evaluation-migrate-1-0-0", "registry:5000/unionhub/evaluation"),
        "Job/evaluation-migrate-1-0-0: image 'registry:5000/unionhub/evaluation' has neither a tag nor a digest",
    ),
    "a migration Job on an image that is no reference": (
        job_image("feedback-migrate-1-0-0", "ghcr.io/unionhub/feedback@1.0.0"),
        "Job/feedback-migrate-1-0-0: image 'ghcr.io/unionhub/feedback@1.0.0': what follows @ is not a digest",
    ),
    "a Kafka port that is no number": (
        edit(lambda d: config_of(d, "evaluation")["data"].update(KAFKA_BOOTSTRAP_SERVERS="kafka:9092,kafka-2:ninety")),
        "Deployment/evaluation-app: KAFKA_BOOTSTRAP_SERVERS: 'kafka-2:ninety' has no port from 1 to 65535",
    ),
    "a database URL whose port is no number": (
        edit(
            lambda d: container(d, "feedback").update(
                env=[{"name": "FEEDBACK_DATABASE_URL", "value": "postgresql+asyncpg://feedback@db:5432x/feedback"}]
            )
        ),
        "Deployment/feedback-app: FEEDBACK_DATABASE_URL has a port that is not a number from 1 to 65535",
    ),
    "a digest-pinned topics image in the old Job": (
        edit(
            lambda d: topics_job(d)["spec"]["template"]["spec"]["containers"][0].update(
                image=f"ghcr.io/unionhub/topics@sha256:{'ab12' * 16}"
            )
        ),
        "name it kafka-topics-ab12ab12ab12 ",
    ),
    "a new topics image in the old Job": (
        edit(
            lambda d: topics_job(d)["spec"]["template"]["spec"]["containers"][0].update(
                image="ghcr.io/unionhub/topics:1.1.0"
            )
        ),
        "kafka-topics-1-1-0",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_rule_refuses_what_it_is_for(rendered: dict, breakage: str) -> None:
    break_it, said = BREAKAGES[breakage]
    found = RULES.problems(break_it(copy.deepcopy(rendered["overlays/production"])))
    assert found and any(said in line for line in found), found


def build(path: Path) -> subprocess.CompletedProcess[str]:
    """`python deploy/k8s/render.py <path>`, as an operator runs it."""
    script = [sys.executable, str(K8S / "render.py"), str(path)]
    return subprocess.run(script, capture_output=True, text=True, timeout=120)


def overlay(tmp_path: Path, base: str, body: str) -> Path:
    """A kustomization in tmp_path taking deploy/k8s/<base>, with `body` added."""
    (tmp_path / "kustomization.yaml").write_text(f"resources: [{os.path.relpath(K8S / base, tmp_path)}]\n{body}")
    return tmp_path


def test_a_production_build_fails_while_a_placeholder_secret_remains(tmp_path: Path) -> None:
    """What an operator might add to the overlay: the build prints nothing and fails."""
    clean = build(K8S / "overlays" / "production")
    assert clean.returncode == 0, clean.stderr
    assert {d["kind"] for d in yaml.safe_load_all(clean.stdout)} >= {"Deployment", "TriggerAuthentication"}
    (tmp_path / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: membership-secrets}\n"
        "stringData: {KAFKA_SASL_PASSWORD: CHANGE_ME}\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(K8S / 'overlays' / 'production', tmp_path)}, secret.yaml]\n"
    )
    refused = build(tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "Secret/membership-secrets: KAFKA_SASL_PASSWORD is a placeholder" in refused.stderr


def test_a_new_image_tag_in_an_overlay_gives_a_new_migration_job_without_a_patch(tmp_path: Path) -> None:
    """A Job's pod template cannot change: 1.1.0's Job under 1.0.0's name would be refused. The
    tag is the one source of the name: whichever layer sets it, render.py names the Job after it."""
    tag = "images: [{name: ghcr.io/unionhub/membership, newTag: '1.1.0'}]\n"
    built = build(overlay(tmp_path, "services/membership", tag))
    assert built.returncode == 0, built.stderr
    (job,) = [d for d in yaml.safe_load_all(built.stdout) if d["kind"] == "Job"]
    assert job["metadata"]["name"] == "membership-migrate-1-1-0"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/unionhub/membership:1.1.0"
    # The production overlay pins tags again: a digest set there names the Job too.
    digest = "sha256:" + "0123456789abcdef" * 4
    pinned = overlay(
        tmp_path, "overlays/production", f"images: [{{name: ghcr.io/unionhub/evaluation, digest: '{digest}'}}]\n"
    )
    built = build(pinned)
    assert built.returncode == 0, built.stderr
    jobs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(built.stdout) if d["kind"] == "Job"}
    assert set(jobs) == {
        "membership-migrate-1-0-0",
        "evaluation-migrate-0123456789ab",
        "feedback-migrate-1-0-0",
        "kafka-topics-1-0-0",
    }
    image = jobs["evaluation-migrate-0123456789ab"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/unionhub/evaluation@{digest}"
    # docs/operations.md's walk waits for that name, and renames no Job by hand.
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "job/membership-migrate-1-1-0" in operations and "/metadata/name" not in operations


def test_a_tag_bumped_in_the_service_layer_still_renders_in_the_production_overlay(tmp_path: Path) -> None:
    """The walk's step 1 bumps the service's own tag; production pins its own (`images:`), which
    wins: each renders, its Job named after the image it runs."""
    copied = tmp_path / "k8s"
    shutil.copytree(K8S, copied)
    service = copied / "services" / "membership" / "kustomization.yaml"
    service.write_text(service.read_text().replace('newTag: "1.0.0"', 'newTag: "1.1.0"'))
    for path, version in (("services/membership", "1.1.0"), ("overlays/production", "1.0.0")):
        built = build(copied / path)
        assert built.returncode == 0, built.stderr
        (job,) = [d for d in yaml.safe_load_all(built.stdout) if d["metadata"]["name"].startswith("membership-migrate")]
        assert job["metadata"]["name"] == f"membership-migrate-{version.replace('.', '-')}"
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/unionhub/membership:{version}"


def test_a_migration_job_named_by_hand_after_another_tag_or_unpinned_is_refused(tmp_path: Path) -> None:
    """Derivation leaves a name set by hand alone; the rule still refuses it. An image pinned by
    neither tag nor digest gets a message, not a traceback."""
    tag = "images: [{name: ghcr.io/unionhub/membership, newTag: '1.1.0'}]\n"
    rename = (
        "patches:\n"
        "  - target: {kind: Job}\n"
        "    patch: |-\n"
        "      - {op: replace, path: /metadata/name, value: membership-migrate-1-0-0}\n"
    )
    refused = build(overlay(tmp_path, "services/membership", tag + rename))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "Job/membership-migrate-1-0-0: runs ghcr.io/unionhub/membership:1.1.0; name it membership-migrate-1-1-0"
        " (a new Job per image version; or leave it `migrate` in the base, and render.py names it)"
    ]
    untagged = (
        "patches:\n"
        "  - target: {kind: Job}\n"
        "    patch: |-\n"
        "      - {op: replace, path: /spec/template/spec/containers/0/image, value: 'registry:5000/unionhub/membership'}\n"
    )
    refused = build(overlay(tmp_path, "services/membership", untagged))
    assert refused.returncode == 1 and refused.stdout == "" and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines() == [
        "Job/membership-migrate: image 'registry:5000/unionhub/membership' has neither a tag nor a digest:"
        " a Job must run a pinned image (`images:` in the kustomization: newTag or digest)"
    ]


@pytest.mark.parametrize("path", RENDERED)
def test_every_migration_job_is_named_after_its_service_and_image_tag(rendered: dict, path: str) -> None:
    for job in of_kind(rendered[path], "Job"):
        (c,) = job["spec"]["template"]["spec"]["containers"]
        if c.get("args") == ["migrate"]:
            image = RULES.parse_image(c["image"])
            assert image.tag == "1.0.0" and job["metadata"]["name"] == f"{image.name.rsplit('/', 1)[1]}-migrate-1-0-0"


def test_no_layer_names_the_migration_job_but_render_py() -> None:
    """The base Job is `migrate`, and no kustomization patches a Job's name: the image's tag,
    wherever it is set, is the one source of it."""
    base = yaml.safe_load((K8S / "base" / "migration-job.yaml").read_text())
    assert base["metadata"]["name"] == "migrate"
    for path in K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        for patch in kustomization.get("patches") or []:
            ops = yaml.safe_load(patch.get("patch", "")) or []
            if (patch.get("target") or {}).get("kind") == "Job" and isinstance(ops, list):
                assert not [op for op in ops if op["path"] == "/metadata/name"], path


DIGEST = "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
IMAGES = [
    # reference, (name, tag, digest), version part of the Job name
    ("ghcr.io/unionhub/membership:1.0.0", ("ghcr.io/unionhub/membership", "1.0.0", None), "1-0-0"),
    (f"ghcr.io/unionhub/membership@{DIGEST}", ("ghcr.io/unionhub/membership", None, DIGEST), "9f86d081884c"),
    (f"ghcr.io/unionhub/membership:1.0.0@{DIGEST}", ("ghcr.io/unionhub/membership", "1.0.0", DIGEST), "1-0-0"),
    ("registry:5000/unionhub/membership:1.1.0", ("registry:5000/unionhub/membership", "1.1.0", None), "1-1-0"),
    (
        f"registry:5000/unionhub/membership@{DIGEST}",
        ("registry:5000/unionhub/membership", None, DIGEST),
        "9f86d081884c",
    ),
    ("membership:1.0.0-rc.1+build.7", ("membership", "1.0.0-rc.1+build.7", None), "1-0-0-rc-1-build-7"),
    ("membership:1.0.0_hotfix", ("membership", "1.0.0_hotfix", None), "1-0-0-hotfix"),
    ("membership:V1.2.0-RC1", ("membership", "V1.2.0-RC1", None), "v1-2-0-rc1"),
    ("membership:.v1.", ("membership", ".v1.", None), "v1"),
]


@pytest.mark.parametrize(("reference", "parts", "version"), IMAGES)
def test_an_image_reference_is_read_as_name_tag_and_digest(reference: str, parts: tuple, version: str) -> None:
    assert tuple(RULES.parse_image(reference)) == parts
    assert RULES.job_version(reference) == version
    assert RULES.versioned_name("membership-migrate", reference) == f"membership-migrate-{version}"


LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # a Job's name is its pods' job-name label


def test_a_job_name_stays_a_label_of_at_most_63_characters_whatever_the_tag() -> None:
    sha = "3f786850e387550fdab836ed7e6dc881de23001b"
    long_tag, other = (
        f"ghcr.io/unionhub/evaluation:main-{sha}-20250101T120000Z",
        f"ghcr.io/unionhub/evaluation:main-{sha}-2",
    )
    name = RULES.versioned_name("evaluation-migrate", long_tag)
    assert len(name) == 63 and LABEL.fullmatch(name)
    assert name.startswith(f"evaluation-migrate-main-{sha[:20]}")
    assert name.endswith("-" + RULES.short_hash(f"main-{sha}-20250101T120000Z"))
    assert RULES.versioned_name("evaluation-migrate", other) != name  # cut alike, named apart
    for reference in [r for r, _, _ in IMAGES] + ["membership:_", "membership:___", long_tag]:
        for base in (
            "membership-migrate",
            "kafka-topics",
            "staging-cell-7-membership-migrate",
        ):
            name = RULES.versioned_name(base, reference)
            assert len(name) <= 63 and LABEL.fullmatch(name), name
    assert re.fullmatch(r"membership-migrate-[0-9a-f]{8}", RULES.versioned_name("membership-migrate", "membership:_"))
    with pytest.raises(RULES.ImageError, match="leaves no room for its version"):
        RULES.versioned_name("a-" * 27 + "migrate", long_tag)  # 61 characters before the version


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        ("registry:5000/unionhub/membership", "has neither a tag nor a digest: a Job must run a pinned image"),
        ("membership", "has neither a tag nor a digest"),
        ("membership:", "an empty or malformed tag"),
        ("membership:1.0:0", "an empty or malformed tag"),
        ("membership@sha256:1234", "what follows @ is not a digest"),
        ("membership@1.0.0", "what follows @ is not a digest"),
        ("", "no image name"),
        ("ghcr.io/unionhub/:1.0.0", "no image name"),
    ],
)
def test_an_image_no_job_can_be_named_after_is_refused_with_a_message(reference: str, said: str) -> None:
    with pytest.raises(RULES.ImageError, match=re.escape(said)):
        RULES.job_version(reference)


def test_a_port_that_is_no_number_is_named_not_a_traceback(tmp_path: Path) -> None:
    """A bootstrap server's or a configured database URL's port: a message, the URL (a password
    may be in it) not repeated."""
    url = "{name: MEMBERSHIP_DATABASE_URL, value: 'postgresql://membership:hunter2@db:99999/membership'}"
    config = (
        "configMapGenerator: [{name: membership-app-config, behavior: merge,"
        " literals: [KAFKA_BOOTSTRAP_SERVERS=kafka-bootstrap.kafka.svc.cluster.local:nine]}]\n"
        "patches:\n"
        "  - target: {kind: Deployment}\n"
        f"    patch: |-\n      - {{op: replace, path: /spec/template/spec/containers/0/env/0, value: {url}}}\n"
        "  - target: {kind: Job}\n"
        f"    patch: |-\n      - {{op: replace, path: /spec/template/spec/containers/0/env/0, value: {url}}}\n"
    )
    refused = build(overlay(tmp_path, "services/membership", config))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "Traceback" not in refused.stderr and "hunter2" not in refused.stderr
    assert refused.stderr.splitlines() == [
        "Deployment/membership-app: KAFKA_BOOTSTRAP_SERVERS:"
        " 'kafka-bootstrap.kafka.svc.cluster.local:nine' has no port from 1 to 65535",
        "Deployment/membership-app: MEMBERSHIP_DATABASE_URL has a port that is not a number from 1 to 65535",
        "Job/membership-migrate-1-0-0: MEMBERSHIP_DATABASE_URL has a port that is not a number from 1 to 65535",
    ]
    assert RULES.bootstrap_port("kafka") == 9092 and RULES.bootstrap_port("[::1]") == 9092
    assert RULES.bootstrap_port("[::1]:9093") == 9093 and RULES.bootstrap_port("kafka:9094") == 9094


def selected(docs: list[dict[str, Any]], key: str, value: str, equal: bool) -> set[str]:
    """What `kubectl apply -l key=value` (or `key!=value`) takes out of docs: by metadata labels."""
    return {
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if (d["metadata"].get("labels", {}).get(key) == value) == equal
    }


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_migration_is_applied_apart_from_the_deployment_it_must_precede(rendered: dict, service: str) -> None:
    """docs/operations.md's walk: `kubectl apply -l 'app.kubernetes.io/component!=server'` (the
    migration Job with the ConfigMap it reads), wait for the Job, then apply the rest."""
    docs = rendered[f"services/{service}"]
    job = named(docs, "Job", f"{service}-migrate-1-0-0")
    config = config_of_job(docs, job)["metadata"]["name"]
    first = selected(docs, "app.kubernetes.io/component", "server", equal=False)
    assert {f"Job/{service}-migrate-1-0-0", f"ConfigMap/{config}"} <= first
    assert selected(docs, "app.kubernetes.io/component", "server", equal=True) == {f"Deployment/{service}-app"}
    assert selected(docs, "app.kubernetes.io/component", "migration", equal=True) == {f"Job/{service}-migrate-1-0-0"}
    # The walk's rollback (step 6): everything of the older render but its migration Job.
    back = selected(docs, "app.kubernetes.io/component", "migration", equal=False)
    assert {f"Deployment/{service}-app", f"ConfigMap/{config}"} <= back and not [o for o in back if "Job/" in o]


def test_a_kafka_port_no_network_policy_lets_out_fails_to_render(tmp_path: Path) -> None:
    port = (
        "configMapGenerator: [{name: membership-app-config, behavior: merge,"
        " literals: [KAFKA_BOOTSTRAP_SERVERS=kafka-bootstrap.kafka.svc.cluster.local:9094]}]\n"
    )
    refused = build(overlay(tmp_path, "services/membership", port))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "Deployment/membership-app: reaches Kafka on port 9094 (KAFKA_BOOTSTRAP_SERVERS),"
        " which no NetworkPolicy selecting its pods lets out"
    ]  # not the migration Job: it reaches its database only


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_service_deploys_alone_with_everything_it_needs(rendered: dict, service: str) -> None:
    docs = rendered[f"services/{service}"]
    # No Secret is rendered: no password has a default (the operator creates <service>-secrets).
    assert sorted(d["kind"] for d in docs) == [
        "ConfigMap",
        "Deployment",
        "Job",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "ScaledObject",
        "Service",
    ]
    deployment = deployment_of(docs, service)
    assert "replicas" not in deployment["spec"]  # KEDA's
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
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    prefix = SETTINGS[service].model_config["env_prefix"]
    for name in config["data"]:
        assert name.startswith((prefix, "KAFKA_", "UNIONHUB_AUTH_")), name
        if name.startswith(prefix):
            assert name.removeprefix(prefix).lower() in SETTINGS[service].model_fields, name
        if name.startswith("UNIONHUB_AUTH_"):
            assert name.removeprefix("UNIONHUB_AUTH_").lower() in AuthSettings.model_fields, name
    assert int(config["data"][f"{prefix}HTTP_PORT"]) == container["ports"][0]["containerPort"]
    assert config["data"][f"{prefix}HTTP_HOST"] == "0.0.0.0"  # reachable from the kubelet and the Service
    # What is secret comes by key from the fixed-name Secret (no generator's hash in its name),
    # the read API's token keys included; the migration needs the database only.
    secrets = f"{service}-secrets"
    assert env_of(container) == {
        f"{prefix}DATABASE_URL": {"name": secrets, "key": f"{prefix}DATABASE_URL"},
        "UNIONHUB_AUTH_JWKS_URL": {"name": secrets, "key": "UNIONHUB_AUTH_JWKS_URL"},
    }
    assert {"database_url"} <= set(SETTINGS[service].model_fields) and "jwks_url" in AuthSettings.model_fields
    (job,) = of_kind(docs, "Job")
    assert job["metadata"]["name"] == f"{service}-migrate-1-0-0"  # a new Job per image tag
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"]
    assert env_of(migrate) == {f"{prefix}DATABASE_URL": {"name": secrets, "key": f"{prefix}DATABASE_URL"}}
    # The Service sends traffic to the serving pods, never to the migration's.
    (svc,) = of_kind(docs, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert not svc["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
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
            spec = other["spec"]
            assert spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"] <= 6
        assert not [d for d in of_kind(rendered[overlay], "Deployment") if "replicas" in d["spec"]]


def test_the_overlays_put_everything_in_one_namespace_behind_a_default_deny(rendered: dict) -> None:
    for overlay, namespace in (("overlays/staging", "unionhub-staging"), ("overlays/production", "unionhub")):
        docs = rendered[overlay]
        assert {d["metadata"].get("namespace") for d in docs} == {namespace}
        assert len(of_kind(docs, "Deployment")) == 3 and len(of_kind(docs, "ScaledObject")) == 3
        assert len(of_kind(docs, "PodDisruptionBudget")) == 3
        deny = named(docs, "NetworkPolicy", "default-deny")["spec"]
        # This system's pods only: a broker or database in the same namespace keeps its traffic.
        assert deny == {
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "unionhub"}},
            "policyTypes": ["Ingress", "Egress"],
        }
        for workload in of_kind(docs, "Deployment"):
            assert RULES.selects(deny["podSelector"], workload["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_a_service_may_reach_dns_kafka_its_database_and_its_key_provider_and_be_scraped(
    rendered: dict, service: str
) -> None:
    docs = rendered["overlays/production"]
    deployment = deployment_of(docs, service)
    config = named(
        docs, "ConfigMap", deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    )
    (policy,) = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["metadata"]["name"] != "default-deny"
        and RULES.selects(p["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    ]
    egress = {
        (port["port"], port.get("protocol", "TCP")) for rule in policy["spec"]["egress"] for port in rule["ports"]
    }
    kafka_ports = {int(server.rsplit(":", 1)[1]) for server in config["data"]["KAFKA_BOOTSTRAP_SERVERS"].split(",")}
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")} | {(p, "TCP") for p in kafka_ports} <= egress
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in ingress["from"]}
    assert sources == {"monitoring", "ingress-nginx"}
    # The migration Job's pod is the service's too: it reaches its database under default-deny.
    (job,) = [j for j in of_kind(docs, "Job") if j["metadata"]["name"] == f"{service}-migrate-1-0-0"]
    assert RULES.selects(policy["spec"]["podSelector"], job["spec"]["template"]["metadata"]["labels"])


KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
}
NODE_LOCAL_DNS = {"ipBlock": {"cidr": "169.254.20.10/32"}}  # NodeLocal DNSCache's link-local address


@pytest.mark.parametrize("overlay", ["overlays/staging", "overlays/production"])
def test_every_pod_resolves_names_through_kube_dns_or_the_node_local_cache(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    for where, _, template in RULES.workloads(docs):
        dns = [
            rule
            for p in of_kind(docs, "NetworkPolicy")
            if RULES.selects(p["spec"]["podSelector"], RULES.pod_labels(template))
            for rule in p["spec"].get("egress", [])
            if {"port": 53, "protocol": "UDP"} in rule.get("ports", [])
        ]
        assert [r["ports"] for r in dns] == [[{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]], where
        assert dns[0]["to"] == [KUBE_DNS, NODE_LOCAL_DNS], where


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_production_reaches_kafka_over_sasl_ssl_from_the_pods_and_from_keda_alike(rendered: dict, service: str) -> None:
    docs = rendered["overlays/production"]
    (container,) = deployment_of(docs, service)["spec"]["template"]["spec"]["containers"]
    config = named(docs, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and config["KAFKA_SASL_USERNAME"] == service
    password = {"name": f"{service}-secrets", "key": "KAFKA_SASL_PASSWORD"}
    assert env_of(container)["KAFKA_SASL_PASSWORD"] == password
    scaled = named(docs, "ScaledObject", f"{service}-app")
    assert {t["authenticationRef"]["name"] for t in scaled["spec"]["triggers"]} == {f"{service}-kafka"}
    auth = named(docs, "TriggerAuthentication", f"{service}-kafka")["spec"]
    refs = {r["parameter"]: r for r in auth["configMapTargetRef"] + auth["secretTargetRef"]}
    assert {k: refs["password"][k] for k in ("name", "key")} == password  # the service's own user
    assert refs["username"]["name"] == container["envFrom"][0]["configMapRef"]["name"]
    assert refs["username"]["key"] == "KAFKA_SASL_USERNAME"
    assert (refs["ca"]["name"], refs["ca"]["key"]) == ("kafka-ca", "ca.crt")  # the CA the pods mount
    keda = named(docs, "ConfigMap", refs["sasl"]["name"])["data"]
    assert keda[refs["sasl"]["key"]] == KEDA_SASL[config["KAFKA_SASL_MECHANISM"]]
    assert keda[refs["tls"]["key"]] == "enable"


def test_the_topics_job_runs_the_topics_image_and_authenticates_in_production(rendered: dict) -> None:
    for path in ("platform", "overlays/staging", "overlays/production"):
        job = topics_job(rendered[path])
        (container,) = job["spec"]["template"]["spec"]["containers"]
        image, tag = container["image"].rsplit(":", 1)
        assert image == "ghcr.io/unionhub/topics" and job["metadata"]["name"] == f"kafka-topics-{tag.replace('.', '-')}"
        assert "command" not in container and "args" not in container  # the image's own entrypoint
    docs = rendered["overlays/production"]
    (container,) = topics_job(docs)["spec"]["template"]["spec"]["containers"]
    config = named(docs, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and config["KAFKA_SASL_USERNAME"] == "unionhub-topics"
    assert env_of(container)["KAFKA_SASL_PASSWORD"] == {"name": "kafka-topics-secrets", "key": "KAFKA_SASL_PASSWORD"}
    assert config["KAFKA_REPLICATION_FACTOR"] == "3"
    staging = topics_job(rendered["overlays/staging"])["spec"]["template"]["spec"]["containers"][0]
    assert (
        named(rendered["overlays/staging"], "ConfigMap", staging["envFrom"][0]["configMapRef"]["name"])["data"][
            "KAFKA_REPLICATION_FACTOR"
        ]
        == "1"
    )


def test_the_external_secrets_example_makes_every_secret_key_production_reads(rendered: dict) -> None:
    read = set()
    for doc in rendered["overlays/production"]:
        for ref in doc.get("spec", {}).get("secretTargetRef", []):  # TriggerAuthentications
            read.add((ref["name"], ref["key"]))
        template = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in template.get("containers", []):
            refs = [item.get("valueFrom", {}).get("secretKeyRef") for item in c.get("env", [])]
            read |= {(r["name"], r["key"]) for r in refs if r}
    made = {
        (es["spec"]["target"]["name"], item["secretKey"])
        for es in of_kind(rendered["examples/external-secrets"], "ExternalSecret")
        for item in es["spec"]["data"]
    }
    assert read == made
    assert {name for name, _ in made} == RULES.OUT_OF_BAND["Secret"]
    assert {d["metadata"]["namespace"] for d in rendered["examples/external-secrets"]} == {"unionhub"}


def test_the_grace_period_budget_matches_how_the_service_stops() -> None:
    """render.py sizes terminationGracePeriodSeconds on these: change one, check the other."""
    parts = re.findall(r'^\s+\("([^"]+)", ', inspect.getsource(Service.stop), re.M)
    assert len(parts) == RULES.STOP_PARTS, parts
    assert shutdown.LAST_CHANCE_SECONDS == 1
    assert f"timeout_graceful_shutdown={RULES.HTTP_DRAIN_SECONDS}," in inspect.getsource(cli.main)
    for service, settings in SETTINGS.items():
        assert settings.model_fields["shutdown_seconds"].default == 20, service
