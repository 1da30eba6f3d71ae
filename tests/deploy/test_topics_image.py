"""The topics tool's image (deploy/docker/Dockerfile, `--target topics`), checked without a
Docker engine: the contracts and the runtime only, no service, run as a non-root user; the
`kafka-topics` Job and compose's `topics` run it (issue 18, point 7)."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.test_containers import DEPLOY, DOCKERFILE, ROOT, named, stages


def distribution(directory: Path) -> dict:
    return tomllib.loads((directory / "pyproject.toml").read_text())["project"]


def test_the_topics_image_holds_the_contracts_and_the_runtime_and_no_service() -> None:
    text = DOCKERFILE.read_text()
    build, final = named(text, "topics-build"), named(text, "topics")
    assert not [rest for _, rest in build + final if "SERVICE" in rest or "services/" in rest]
    copied = {rest.split()[0] for keyword, rest in build if keyword == "COPY"}
    assert copied == {"constraints.txt", "contracts/", "libs/domain/", "libs/runtime/"}
    (install,) = [rest for keyword, rest in build if keyword == "RUN" and "pip install" in rest]
    words = shlex.split(install)
    targets = [ROOT / t for t in words[words.index("constraints.txt") + 1 :]]
    # Every unionhub distribution the installed ones depend on is installed too.
    names = {canonicalize_name(distribution(t)["name"]) for t in targets}
    needed = {canonicalize_name(Requirement(d).name) for t in targets for d in distribution(t).get("dependencies", [])}
    assert {d for d in needed if d.startswith("unionhub-")} <= names
    assert [rest for keyword, rest in final if keyword == "COPY"] == ["--from=topics-build /opt/venv /opt/venv"]
    (user,) = [rest for keyword, rest in final if keyword == "USER"]
    assert int(user.split(":")[0]) != 0
    assert ("ENTRYPOINT", '["python", "-m", "unionhub_runtime.topics"]') in final


def test_the_topics_stages_come_before_the_services_so_a_plain_builder_never_needs_service() -> None:
    froms = [stage[0][1] for stage in stages(DOCKERFILE.read_text())]
    assert [f.split(" AS ")[-1] for f in froms[:2]] == ["topics-build", "topics"]


def test_compose_creates_the_topics_from_the_topics_image() -> None:
    topics = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["topics"]
    assert topics["build"] == {"context": "..", "dockerfile": "deploy/docker/Dockerfile", "target": "topics"}
    assert "entrypoint" not in topics  # the image's own
