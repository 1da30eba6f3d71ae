"""The tree stays as docs/architecture.md describes it: one skeleton for the three services, a
domain free of I/O, and a walk-through whose every file and name exists."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SERVICES = ("membership", "evaluation", "feedback")
SKELETON = {
    "domain/model.py",
    "domain/commands.py",
    "domain/events.py",
    "service_layer/handlers.py",
    "service_layer/messagebus.py",
    "service_layer/ports.py",
    "adapters/orm.py",
    "adapters/repositories.py",
    "adapters/unit_of_work.py",
    "adapters/integration.py",
    "adapters/metrics.py",
    "adapters/views.py",
    "entrypoints/consumers.py",
    "entrypoints/api.py",
    "bootstrap.py",
    "settings.py",
    "__main__.py",
}
PATH = re.compile(r"`((?:libs|services|contracts|docs|tests|deploy)/[\w./-]+)`")


def walk() -> list[tuple[Path, str]]:
    """The numbered steps of the command's walk: (file, the step's text)."""
    section = ARCHITECTURE.read_text().split("## `member.enroll`", 1)[1].split("\n## ", 1)[0]
    steps = re.split(r"\n(?=\d+\. )", section)
    return [(ROOT / PATH.search(step)[1], step) for step in steps if re.match(r"\d+\. ", step)]  # type: ignore[index]


def test_every_path_the_architecture_names_exists() -> None:
    named = PATH.findall(ARCHITECTURE.read_text())
    assert named, "docs/architecture.md names no file"
    assert [p for p in named if not (ROOT / p).exists()] == []


def test_the_walk_crosses_at_most_eight_files_none_twice() -> None:
    files = [path for path, _ in walk()]
    assert 1 <= len(files) <= 8
    assert len(set(files)) == len(files)


def test_every_name_a_step_gives_is_in_its_file() -> None:
    for path, step in walk():
        text = path.read_text()
        names = [name.split(".")[-1] for name in re.findall(r"`([A-Za-z_][\w.]*)`", step) if "/" not in name]
        missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", text)]
        assert missing == [], f"{path.relative_to(ROOT)} has no {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_the_one_skeleton(service: str) -> None:
    package = ROOT / "services" / service / "src" / service
    assert sorted(f for f in SKELETON if not (package / f).exists()) == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_imports_only_itself_the_kernel_and_the_standard_library(service: str) -> None:
    allowed = {"unionhub_domain", "__future__", *sys.stdlib_module_names}
    for module in (ROOT / "services" / service / "src" / service / "domain").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{module.name} imports {roots - allowed}"


def test_the_runtime_holds_no_business() -> None:
    runtime = ROOT / "libs" / "runtime" / "src" / "unionhub_runtime"
    for module in runtime.rglob("*.py"):
        text = module.read_text()
        assert not re.search(r"\b(membership|evaluation|feedback)\.(domain|adapters|service_layer)\b", text), module
        assert "mv_members" not in text, f"{module.name} knows membership's view"
