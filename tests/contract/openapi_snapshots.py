"""`python -m tests.contract.openapi_snapshots --write`: each service's `/openapi.json`,
committed as `services/<service>/openapi.json` so that changes to a read API are reviewed
and checked (`test_openapi.py`), as `contracts/schemas` is for the messages.

The documents come from the services' own apps, built as the tests build them: no broker,
no database is reached (routes exist before `start`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

import evaluation.bootstrap
import feedback.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from unionhub_runtime.auth import AuthSettings
from unionhub_runtime.service import Service

ROOT = Path(__file__).resolve().parents[2]
# Building a service needs signing keys; the document does not depend on them (explicit
# arguments, so UNIONHUB_AUTH_* in the environment cannot make two sources).
_AUTH = AuthSettings(hs256_secret=SecretStr("openapi-snapshot-" + "x" * 32), jwks_file=None, jwks_url=None)
_DATABASE = "sqlite+aiosqlite://"  # an engine that is never connected
BUILDERS: dict[str, Callable[[], Service]] = {
    "membership": lambda: membership.bootstrap.build(MembershipSettings(database_url=_DATABASE, auth=_AUTH)),
    "evaluation": lambda: evaluation.bootstrap.build(EvaluationSettings(database_url=_DATABASE, auth=_AUTH)),
    "feedback": lambda: feedback.bootstrap.build(FeedbackSettings(database_url=_DATABASE, auth=_AUTH)),
}
SERVICES = tuple(BUILDERS)


def document(service: str) -> dict[str, Any]:
    """The service's `/openapi.json` as it would serve it, through JSON (as a client reads it)."""
    doc: dict[str, Any] = json.loads(json.dumps(BUILDERS[service]().asgi().openapi()))
    return doc


def snapshot_path(service: str) -> Path:
    return ROOT / "services" / service / "openapi.json"


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def differences(old: Any, new: Any, at: str = "") -> list[str]:
    """Where two JSON documents differ, as `+ added`, `- removed`, `~ changed` paths."""
    found: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            here = f"{at}/{key}"
            if key not in new:
                found.append(f"- {here}")
            elif key not in old:
                found.append(f"+ {here}")
            else:
                found += differences(old[key], new[key], here)
    elif old != new:
        found.append(f"~ {at or '/'}")
    return found


def write() -> list[Path]:
    written = []
    for service in SERVICES:
        target = snapshot_path(service)
        target.write_text(render(document(service)))
        written.append(target)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", required=True, help="rewrite services/*/openapi.json")
    parser.parse_args()
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
