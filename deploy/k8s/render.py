"""Renders a kustomization and prints it only when the project's rules hold: what no schema
sees because it crosses objects (a Deployment and its PodDisruptionBudget, NetworkPolicy,
ScaledObject, ConfigMap and Secrets).

    python deploy/k8s/render.py deploy/k8s/overlays/production | kubectl apply -f -

Rendering names each service's migration Job after the image it runs, whichever layer set
the tag: kustomize's `<service>-migrate` becomes `<service>-migrate-<version>` (`job_version`).
On a broken rule it prints one line per problem on stderr, nothing on stdout, and exits 1: a
production build fails while a placeholder Secret remains, a Deployment that KEDA scales sets
`spec.replicas`, a pod would start without a password it needs, a Job keeps its name under a
new image version or runs an image pinned by neither tag nor digest, a pod's NetworkPolicies
would not let it reach the Kafka port its config names... tests/deploy/test_kubernetes.py
runs the same `problems` on every overlay. Needs kustomize (`make tools`) and PyYAML.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import yaml

Doc = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
# Made per environment, never rendered (docs/operations.md, "Secrets"; examples/external-secrets).
OUT_OF_BAND = {
    "Secret": {"membership-secrets", "evaluation-secrets", "feedback-secrets", "kafka-topics-secrets"},
    "ConfigMap": {"kafka-ca"},
}
PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|\btodo\b|\bfixme\b|<[^<>]+>|example\.(com|org)|^x{3,}$", re.I)
# What a stop may take past <SERVICE>_SHUTDOWN_SECONDS: uvicorn's HTTP drain first
# (unionhub_runtime.cli, timeout_graceful_shutdown), then 1 s (shutdown.LAST_CHANCE_SECONDS) for
# each of Service.stop's 8 parts reached after the deadline; and a margin before SIGKILL.
HTTP_DRAIN_SECONDS, STOP_PARTS, MARGIN_SECONDS = 5, 8, 3
# The base's migration Job (deploy/k8s/base/migration-job.yaml), `<service>-migrate` once
# prefixed: render() appends the version of the image it runs.
MIGRATE = "migrate"
# A Job's name is also the value of its pods' `job-name` label: 63 characters at most.
NAME_LIMIT = 63
DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


class ImageError(ValueError):
    """An image reference render.py cannot read, or cannot name a Job after."""


class Image(NamedTuple):
    """An image reference, `[registry[:port]/]path[:tag][@algorithm:hex]`, in its parts."""

    name: str
    tag: str | None
    digest: str | None


def parse_image(reference: str) -> Image:
    """The digest follows `@`; the tag follows a `:` after the last `/` (before it, a `:` is
    a registry's port). Lenient about the tag's characters (job_version makes a name of any),
    strict about its place."""
    rest, at, digest = reference.partition("@")
    if at and not DIGEST.fullmatch(digest):
        raise ImageError(f"image {reference!r}: what follows @ is not a digest (<algorithm>:<hex>)")
    path, _, last = rest.rpartition("/")
    last, colon, tag = last.partition(":")
    name = f"{path}/{last}" if path else last
    if not last or not name.strip() or any(ch.isspace() for ch in reference):
        raise ImageError(f"image {reference!r}: no image name")
    if colon and (not tag or ":" in tag):
        raise ImageError(f"image {reference!r}: an empty or malformed tag")
    return Image(name, tag if colon else None, digest if at else None)


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def job_version(reference: str, room: int = NAME_LIMIT) -> str:
    """The part of a Job's name that says which image it runs, at most `room` characters: the
    tag in lower case, every character outside [a-z0-9-] a `-`, trimmed of `-` (`1.0.0` ->
    `1-0-0`); without a tag, the digest's first 12 hex digits. Longer than `room` (a long git
    tag), it is cut and ends in a hash of the whole tag, so two long tags never share a name.
    An image with neither tag nor digest is refused: a Job must run the same image every time."""
    image = parse_image(reference)
    if image.tag is not None:
        version = re.sub(r"[^a-z0-9-]", "-", image.tag.lower()).strip("-") or short_hash(image.tag)
    elif image.digest is not None:
        version = image.digest.split(":", 1)[1][:12].lower()
    else:
        raise ImageError(
            f"image {reference!r} has neither a tag nor a digest: a Job must run a pinned image"
            " (`images:` in the kustomization: newTag or digest)"
        )
    if len(version) <= room:
        return version
    whole = short_hash(image.tag or image.digest or "")
    if room < len(whole):
        raise ImageError(f"image {reference!r}: its Job's name leaves no room for its version ({NAME_LIMIT} at most)")
    return "-".join(filter(None, (version[: max(room - len(whole) - 1, 0)].rstrip("-"), whole)))


def versioned_name(base: str, reference: str) -> str:
    """`<base>-<job_version>`, at most NAME_LIMIT characters."""
    return f"{base}-{job_version(reference, NAME_LIMIT - len(base) - 1)}"


def migration_image(job: Doc) -> str | None:
    """The image of a Job's container that runs `migrate`, if one does."""
    containers = job["spec"]["template"]["spec"]["containers"]
    return next((c["image"] for c in containers if c.get("args") == [MIGRATE]), None)


def name_migration_jobs(docs: list[Doc]) -> list[Doc]:
    """Each migration Job kustomize left named `migrate` (`<service>-migrate`, any prefix) gets
    its image's version appended: the image is the one source of the name, so an overlay that
    pins another tag (`images:`) renames the Job with no patch. A name set by hand is left for
    `versioned_jobs` to judge; so is an image it cannot name the Job after."""
    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] == "Job" and (image := migration_image(d)) and (name == MIGRATE or name.endswith(f"-{MIGRATE}")):
            with contextlib.suppress(ImageError):  # versioned_jobs says why
                d["metadata"]["name"] = versioned_name(name, image)
    return docs


def render(path: str | Path) -> list[Doc]:
    binary = ROOT / ".venv" / "bin" / "kustomize"
    kustomize = str(binary) if binary.exists() else shutil.which("kustomize")
    if kustomize is None:
        raise SystemExit("kustomize is missing: `make tools` installs it")
    done = subprocess.run([kustomize, "build", str(path)], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise SystemExit(done.stderr)
    return name_migration_jobs([d for d in yaml.safe_load_all(done.stdout) if d])


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in of_kind(docs, kind) if d["metadata"]["name"] == name), None)


def selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against a pod's labels; {} selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        found, values = e["key"] in labels, e.get("values") or []
        ok = {
            "In": found and labels[e["key"]] in values,
            "NotIn": not found or labels[e["key"]] not in values,
            "Exists": found,
            "DoesNotExist": not found,
        }[e["operator"]]
        if not ok:
            return False
    return True


def workloads(docs: list[Doc]) -> Iterator[tuple[str, Doc, Doc]]:
    """(`Kind/name`, the object, its pod template) of every Deployment and Job."""
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d, d["spec"]["template"]


def pod_labels(template: Doc) -> dict[str, str]:
    return dict((template.get("metadata") or {}).get("labels") or {})


def environment(container: Doc, docs: list[Doc]) -> dict[str, str | tuple[str, str]]:
    """The container's variables: a value, or (Secret, key) for a secretKeyRef."""
    env: dict[str, str | tuple[str, str]] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source and (config := named(docs, "ConfigMap", source["configMapRef"]["name"])):
            env.update(config.get("data") or {})
    for item in container.get("env") or []:
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        env[item["name"]] = (ref["name"], ref["key"]) if ref else str(item.get("value", ""))
    return env


def probes_and_resources(docs: list[Doc]) -> Iterator[str]:
    for where, d, template in workloads(docs):
        pod = template["spec"]
        if pod.get("automountServiceAccountToken") is not False or not pod["securityContext"].get("runAsNonRoot"):
            yield f"{where}: runs with a service account token or as root"
        for c in pod["containers"]:
            resources = c.get("resources") or {}
            if not {"cpu", "memory"} <= set(resources.get("requests") or {}) or "memory" not in (
                resources.get("limits") or {}
            ):
                yield f"{where}: container {c['name']} lacks cpu/memory requests or a memory limit"
            sc = c.get("securityContext") or {}
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
                yield f"{where}: container {c['name']} has a writable root or may escalate"
            if d["kind"] != "Deployment":
                continue
            ports = {p.get("name") for p in c.get("ports") or []} | {p["containerPort"] for p in c.get("ports") or []}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                if port not in ports:
                    yield f"{where}: container {c['name']} has no {probe} on a port it declares"


def disruption_and_spread(docs: list[Doc]) -> Iterator[str]:
    jobs = [pod_labels(t) for _, d, t in workloads(docs) if d["kind"] == "Job"]
    servers = {d["metadata"]["name"]: t for _, d, t in workloads(docs) if d["kind"] == "Deployment"}
    for name, template in servers.items():
        labels = pod_labels(template)
        budgets = [p for p in of_kind(docs, "PodDisruptionBudget") if selects(p["spec"].get("selector"), labels)]
        if len(budgets) != 1:
            yield f"Deployment/{name}: {len(budgets)} PodDisruptionBudgets select its pods, not 1"
        for p in budgets:
            if "maxUnavailable" not in p["spec"] or any(selects(p["spec"]["selector"], j) for j in jobs):
                yield f"PodDisruptionBudget/{p['metadata']['name']}: no maxUnavailable, or it selects a Job's pod"
        others = [pod_labels(t) for n, t in servers.items() if n != name]
        if not any(
            c["topologyKey"] == "kubernetes.io/hostname"
            and selects(c.get("labelSelector"), labels)
            and not any(selects(c.get("labelSelector"), o) for o in others)
            for c in template["spec"].get("topologySpreadConstraints") or []
        ):
            yield f"Deployment/{name}: no topology spread over nodes of its own pods"


def network(docs: list[Doc]) -> Iterator[str]:
    policies = of_kind(docs, "NetworkPolicy")
    for where, d, template in workloads(docs):
        own = [
            p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], pod_labels(template))
        ]
        if not any("Egress" in p["spec"].get("policyTypes", []) and p["spec"].get("egress") for p in own):
            yield f"{where}: no NetworkPolicy of its own allows its egress (under default-deny it reaches nothing)"
        if d["kind"] == "Deployment" and not any(
            "Ingress" in p["spec"].get("policyTypes", []) and p["spec"].get("ingress") for p in own
        ):
            yield f"{where}: no NetworkPolicy of its own says who may reach its port"


def secrets_and_references(docs: list[Doc]) -> Iterator[str]:
    for kind in ("Secret", "ConfigMap"):
        for d in of_kind(docs, kind):
            values = {**(d.get("stringData") or {}), **(d.get("data") or {})}
            for key, value in values.items():
                if kind == "Secret" and key in (d.get("data") or {}):
                    value = base64.b64decode(value).decode("utf-8", "replace")
                if PLACEHOLDER.search(str(value)):
                    yield f"{kind}/{d['metadata']['name']}: {key} is a placeholder; make the real one out of band"
    wanted: list[tuple[str, str, str, str | None]] = []  # (who, kind, name, key)
    for where, _, template in workloads(docs):
        pod = template["spec"]
        for v in pod.get("volumes") or []:
            for kind, field, name in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                if field in v:
                    wanted.append((where, kind, v[field][name], None))
        for c in pod["containers"]:
            for source in c.get("envFrom") or []:
                for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if field in source:
                        wanted.append((where, kind, source[field]["name"], None))
            for item in c.get("env") or []:
                for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if ref := (item.get("valueFrom") or {}).get(field):
                        wanted.append((where, kind, ref["name"], ref["key"]))
    for auth in of_kind(docs, "TriggerAuthentication"):
        for kind, field in (("ConfigMap", "configMapTargetRef"), ("Secret", "secretTargetRef")):
            for ref in auth["spec"].get(field) or []:
                wanted.append((f"TriggerAuthentication/{auth['metadata']['name']}", kind, ref["name"], ref["key"]))
    for who, kind, name, key in wanted:
        found = named(docs, kind, name)
        if found is None and name not in OUT_OF_BAND[kind]:
            yield f"{who}: {kind} {name} is neither rendered nor made out of band"
        elif (
            found is not None
            and key is not None
            and key not in {**(found.get("data") or {}), **(found.get("stringData") or {})}
        ):
            yield f"{who}: {kind} {name} has no key {key}"


def scaling(docs: list[Doc]) -> Iterator[str]:
    auths = {a["metadata"]["name"] for a in of_kind(docs, "TriggerAuthentication")}
    for so in of_kind(docs, "ScaledObject"):
        spec, where = so["spec"], f"ScaledObject/{so['metadata']['name']}"
        target = named(docs, "Deployment", spec["scaleTargetRef"]["name"])
        if target is None:
            yield f"{where}: scales no rendered Deployment"
            continue
        if "replicas" in target["spec"]:
            yield f"Deployment/{target['metadata']['name']}: sets spec.replicas, which its ScaledObject owns"
        fallback = (spec.get("fallback") or {}).get("replicas")
        if fallback is None or not spec.get("minReplicaCount", 0) <= fallback <= spec.get("maxReplicaCount", 100):
            yield f"{where}: no fallback between minReplicaCount and maxReplicaCount"
        env = environment(target["spec"]["template"]["spec"]["containers"][0], docs)
        sasl = str(env.get("KAFKA_SECURITY_PROTOCOL", "")).startswith("SASL")
        for trigger in spec["triggers"]:
            ref = (trigger.get("authenticationRef") or {}).get("name")
            if ref is not None and ref not in auths:
                yield f"{where}: trigger on {trigger['metadata']['topic']} names no rendered TriggerAuthentication"
            if sasl and ref is None:
                yield f"{where}: the service uses SASL but KEDA reads {trigger['metadata']['topic']} without it"


def kafka_auth(docs: list[Doc]) -> Iterator[str]:
    for where, _, template in workloads(docs):
        for c in template["spec"]["containers"]:
            env = environment(c, docs)
            # A migration reaches its database only (it shares the service's ConfigMap).
            if c.get("args") != ["migrate"] and str(env.get("KAFKA_SECURITY_PROTOCOL", "")).startswith("SASL"):
                if not isinstance(env.get("KAFKA_SASL_PASSWORD"), tuple):
                    yield f"{where}: speaks SASL without KAFKA_SASL_PASSWORD from a Secret"
                if "SSL" in str(env["KAFKA_SECURITY_PROTOCOL"]) and not any(
                    str(env.get("KAFKA_SSL_CAFILE", "")).startswith(m["mountPath"]) for m in c.get("volumeMounts") or []
                ):
                    yield f"{where}: KAFKA_SSL_CAFILE is not on a mounted volume"


def versioned_jobs(docs: list[Doc]) -> Iterator[str]:
    """A Job's pod template cannot change: applying the next version's Job under the same name
    fails while the last one is kept (ttlSecondsAfterFinished). So the topics and migration Jobs
    carry their image's version (`job_version`) in their name: a new image is a new Job.

    render() derives each migration Job's name from its image, so a render cannot get it wrong;
    the rule stays for what derivation leaves alone: a name set by hand (a patch renaming the
    Job, a nameSuffix), an image it cannot name the Job after, and objects that did not come
    through render(). The topics Job is named by hand (deploy/k8s/platform/topics-job.yaml)."""
    for where, d, template in workloads(docs):
        if d["kind"] != "Job":
            continue
        name = d["metadata"]["name"]
        for c in template["spec"]["containers"]:
            try:
                image = parse_image(c["image"])
            except ImageError as error:
                yield f"{where}: {error}"
                continue
            app = image.name.rsplit("/", 1)[-1]
            if app == "topics":
                stem, hint = "kafka-topics", ""
            elif c.get("args") == [MIGRATE]:
                stem = name[: name.rindex(MIGRATE) + len(MIGRATE)] if MIGRATE in name else f"{app}-{MIGRATE}"
                hint = f"; or leave it `{MIGRATE}` in the base, and render.py names it"
            else:
                continue
            try:
                expected = versioned_name(stem, c["image"])
            except ImageError as error:
                yield f"{where}: {error}"
                continue
            if name != expected:
                yield f"{where}: runs {c['image']}; name it {expected} (a new Job per image version{hint})"


def opens(rule: Doc, port: int) -> bool:
    """Whether an egress rule lets TCP `port` out: a rule listing no ports opens them all, a
    port entry without a number every port of its protocol; a named port is the destination
    pod's, unknown here."""
    if not rule.get("ports"):
        return True
    for entry in rule["ports"]:
        first = entry.get("port", port)
        if (
            entry.get("protocol", "TCP") == "TCP"
            and isinstance(first, int)
            and first <= port <= entry.get("endPort", first)
        ):
            return True
    return False


def egress_allows(docs: list[Doc], labels: dict[str, str], port: int) -> bool:
    """Whether the NetworkPolicies selecting a pod with these labels let it out on TCP `port`
    (none restricting its egress: yes). By port only: where a host lives (a namespace, an
    address) is not known offline."""
    restricting = [
        p["spec"]
        for p in of_kind(docs, "NetworkPolicy")
        if selects(p["spec"]["podSelector"], labels)
        # Without policyTypes a policy restricts egress when it has egress rules.
        and "Egress" in p["spec"].get("policyTypes", ["Egress"] if "egress" in p["spec"] else [])
    ]
    return not restricting or any(opens(rule, port) for spec in restricting for rule in spec.get("egress") or [])


def bootstrap_port(server: str) -> int:
    """The port of one of KAFKA_BOOTSTRAP_SERVERS (`host:port`, `[v6]:port`; without a port,
    the clients' default 9092)."""
    host, colon, port = server.rpartition(":")
    if not colon or host.endswith(":") or (server.startswith("[") and server.endswith("]")):
        return 9092  # no port, or an IPv6 address in brackets without one
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{server!r} has no port from 1 to 65535")
    return int(port)


def egress_to_configured_ports(docs: list[Doc]) -> Iterator[str]:
    """Each port the config names (Kafka's bootstrap servers; a database URL given in the clear,
    not from a Secret, which render.py cannot read) is one the pod's NetworkPolicies let out:
    else, under default-deny, the pod times out connecting."""
    for where, _, template in workloads(docs):
        for c in template["spec"]["containers"]:
            env = environment(c, docs)
            wanted: dict[int, tuple[str, str]] = {}  # port: (what, the setting naming it)
            servers = env.get("KAFKA_BOOTSTRAP_SERVERS")
            # A migration reaches its database only (it shares the service's ConfigMap).
            if isinstance(servers, str) and c.get("args") != ["migrate"]:
                for server in filter(None, (s.strip() for s in servers.split(","))):
                    try:
                        wanted[bootstrap_port(server)] = "Kafka", "KAFKA_BOOTSTRAP_SERVERS"
                    except ValueError as error:
                        yield f"{where}: KAFKA_BOOTSTRAP_SERVERS: {error}"
            for name, value in env.items():
                if name.endswith("_DATABASE_URL") and isinstance(value, str):
                    url = urlsplit(value)
                    if url.scheme.startswith("postgresql") and url.hostname:  # not SQLite's file
                        try:
                            port = url.port  # ValueError on a port that is no number or past 65535
                        except ValueError:
                            # Not the URL itself: a password may be in it.
                            yield f"{where}: {name} has a port that is not a number from 1 to 65535"
                            continue
                        wanted[port or 5432] = "its database", name
            for port, (what, setting) in sorted(wanted.items()):
                if not egress_allows(docs, pod_labels(template), port):
                    yield (
                        f"{where}: reaches {what} on port {port} ({setting}),"
                        " which no NetworkPolicy selecting its pods lets out"
                    )


def stopping(docs: list[Doc]) -> Iterator[str]:
    for d in of_kind(docs, "Deployment"):
        pod, where = d["spec"]["template"]["spec"], f"Deployment/{d['metadata']['name']}"
        for c in pod["containers"]:
            pre = (c.get("lifecycle") or {}).get("preStop") or {}
            command = (pre.get("exec") or {}).get("command") or []
            sleep = int(command[1]) if command[:1] == ["sleep"] else (pre.get("sleep") or {}).get("seconds")
            if sleep is None:
                yield f"{where}: no preStop sleep (endpoints drain before the service stops)"
                sleep = 0
            env = environment(c, docs)
            shutdown = [float(v) for k, v in env.items() if k.endswith("_SHUTDOWN_SECONDS") and isinstance(v, str)]
            if not shutdown:
                yield f"{where}: its ConfigMap does not say <SERVICE>_SHUTDOWN_SECONDS"
                continue
            needed = sleep + HTTP_DRAIN_SECONDS + shutdown[0] + STOP_PARTS + MARGIN_SECONDS
            if pod.get("terminationGracePeriodSeconds", 30) < needed:
                yield f"{where}: terminationGracePeriodSeconds under {needed:.0f} (preStop + stop + margin)"


RULES = (
    probes_and_resources,
    disruption_and_spread,
    network,
    egress_to_configured_ports,
    secrets_and_references,
    scaling,
    kafka_auth,
    versioned_jobs,
    stopping,
)


def problems(docs: list[Doc]) -> list[str]:
    """Every rule broken by the rendered objects, one line each."""
    return [line for rule in RULES for line in rule(docs)]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: render.py <kustomization directory>", file=sys.stderr)
        return 2
    docs = render(argv[0])
    if found := problems(docs):
        print("\n".join(found), file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
