"""Every read API parameter is validated and every page bounded, on every service: each GET
route from the service's own OpenAPI document is called with values outside its declared
constraints (422 expected) and with hostile ids (404 or 422, never a 500, tables intact)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import evaluation.bootstrap
import feedback.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from tests.support import bearer
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.service import Service

BUILDS = {
    "membership": (membership.bootstrap, MembershipSettings),
    "evaluation": (evaluation.bootstrap, EvaluationSettings),
    "feedback": (feedback.bootstrap, FeedbackSettings),
}
OPERATIONS = {"/healthz", "/readyz", "/metrics", "/asyncapi"}
HOSTILE_IDS = ["' OR 1=1 --", "x" * 129, "%00", "..", "a b", "Robert'); DROP TABLE members;--"]


@pytest.fixture(params=sorted(BUILDS))
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    module, settings_class = BUILDS[request.param]
    url = f"sqlite+aiosqlite:///{tmp_path / 'read.db'}"
    await upgrade_async(module.MIGRATIONS, url)
    built = module.build(settings_class(database_url=url))  # not started: no Kafka needed to read
    yield built
    await built.engine.dispose()


def client(service: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.asgi()), base_url="http://read", headers=bearer()
    )


def read_routes(service: Service) -> list[tuple[str, list[dict[str, Any]]]]:
    spec = service.asgi().openapi()
    return [
        (path, ops["get"].get("parameters", []))
        for path, ops in spec["paths"].items()
        if "get" in ops and path not in OPERATIONS
    ]


def valid_value(schema: dict[str, Any]) -> str:
    schema = next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 1))
    if schema.get("format") == "date":
        return "2018-06-01"
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("pattern", "").startswith(r"^\d{4}-"):
        return "2018-06"
    return "x1"


def invalid_values(schema: dict[str, Any]) -> list[str]:
    schema = next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)
    bad = []
    if schema.get("type") == "integer":
        bad += ["not-a-number", str(10**30)]  # past any database's integers
        if "maximum" in schema:
            bad.append(str(schema["maximum"] + 1))
        if "minimum" in schema:
            bad.append(str(schema["minimum"] - 1))
    if "maxLength" in schema:
        bad.append("a" * (schema["maxLength"] + 1))
    if "pattern" in schema:
        bad.append("no such shape")
    if schema.get("format") == "date":
        bad.append("2018-13-45")
    if "enum" in schema:
        bad.append("surely-not-an-option")
    return bad


async def test_every_constrained_parameter_refuses_what_is_outside_its_constraints(service: Service) -> None:
    routes = read_routes(service)
    assert routes
    tried = 0
    async with client(service) as http:
        for path, parameters in routes:
            good = {p["name"]: valid_value(p["schema"]) for p in parameters}
            for parameter in parameters:
                for bad in invalid_values(parameter["schema"]):
                    values = {**good, parameter["name"]: bad}
                    url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
                    query = {p["name"]: values[p["name"]] for p in parameters if p["in"] == "query"}
                    response = await http.get(url, params=query)
                    assert response.status_code in (404, 422), (path, parameter["name"], bad, response.text)
                    if parameter["in"] == "query":
                        assert response.status_code == 422, (path, parameter["name"], bad)
                    tried += 1
    assert tried >= 4


async def test_every_page_size_is_bounded(service: Service) -> None:
    for _path, parameters in read_routes(service):
        for parameter in parameters:
            if parameter["name"] == "limit":
                assert 1 <= parameter["schema"]["maximum"] <= 1000
                assert parameter["schema"].get("minimum") == 1


async def test_hostile_ids_are_refused_or_not_found_never_an_error(service: Service) -> None:
    async with client(service) as http:
        for path, parameters in read_routes(service):
            path_params = [p["name"] for p in parameters if p["in"] == "path"]
            if not path_params:
                continue
            required = {
                p["name"]: valid_value(p["schema"]) for p in parameters if p["in"] == "query" and p.get("required")
            }
            for hostile in HOSTILE_IDS:
                url = path.format(**{name: hostile for name in path_params})
                response = await http.get(url, params=required)
                assert response.status_code in (404, 422), (url, response.status_code, response.text)
    async with service.sessions() as session:  # the tables are all still there
        assert (await session.execute(text("SELECT count(*) FROM inbox"))).scalar() == 0
        assert (await session.execute(text("SELECT count(*) FROM outbox"))).scalar() == 0
