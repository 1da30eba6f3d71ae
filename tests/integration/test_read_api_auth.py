"""The read APIs want a signed bearer token (contract, section "Every service"; issue 14,
finding 10): 401 without a valid one, 403 without the scope, an opinion's words only with
`feedback:read-text`, keys from a JWKS file (RS256, ES256) or a local shared secret."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import insert

import evaluation.bootstrap
import feedback.bootstrap
import membership.bootstrap
from evaluation.settings import EvaluationSettings
from feedback.adapters import orm as feedback_orm
from feedback.settings import FeedbackSettings
from membership.settings import MembershipSettings
from tests.support import bearer
from unionhub_runtime.auth import AuthNotConfigured, AuthSettings
from unionhub_runtime.migrations import upgrade_async
from unionhub_runtime.service import Service

BUILDS = {
    "membership": (membership.bootstrap, MembershipSettings, "/unions/u-404"),
    "evaluation": (evaluation.bootstrap, EvaluationSettings, "/campaigns/c-404"),
    "feedback": (feedback.bootstrap, FeedbackSettings, "/opinions/o-404"),
}
OPEN = ["/healthz", "/metrics", "/asyncapi", "/openapi.json"]


@pytest.fixture(params=sorted(BUILDS))
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    module, settings_class, _ = BUILDS[request.param]
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await upgrade_async(module.MIGRATIONS, url)
    built = module.build(settings_class(database_url=url))  # not started: reading needs no Kafka
    yield built
    await built.engine.dispose()


def client(service: Service, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.asgi()), base_url="http://auth", headers=headers or {}
    )


def signed(
    claims: dict[str, object], key: object = None, algorithm: str = "HS256", kid: str | None = None
) -> dict[str, str]:
    token = jwt.encode(
        claims,
        key or os.environ["UNIONHUB_AUTH_HS256_SECRET"],
        algorithm=algorithm,  # type: ignore[arg-type]
        headers={"kid": kid} if kid else None,
    )
    return {"Authorization": f"Bearer {token}"}


async def test_a_read_route_wants_a_valid_token_with_the_service_scope(service: Service) -> None:
    name = service.name
    route = BUILDS[name][2]
    soon = int(time.time()) + 600
    refused = {
        "no token": ({}, 401),
        "not a JWT": ({"Authorization": "Bearer not-a-token"}, 401),
        "another scheme": ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
        "another secret": (signed({"aud": name, "exp": soon, "scope": f"{name}:read"}, key="x" * 32), 401),
        "expired": (signed({"aud": name, "exp": int(time.time()) - 3600, "scope": f"{name}:read"}), 401),
        "no expiry": (signed({"aud": name, "scope": f"{name}:read"}), 401),
        "for another service": (bearer(f"{name}:read", audience="somebody-else"), 401),
        "unsigned": (
            {
                "Authorization": "Bearer "
                + jwt.encode({"aud": name, "exp": soon, "scope": f"{name}:read"}, None, algorithm="none")
            },
            401,
        ),
        "without the scope": (bearer("other:read", audience=name), 403),
    }
    async with client(service) as http:
        for what, (headers, status) in refused.items():
            response = await http.get(route, headers=headers)
            assert response.status_code == status, what
            assert "Bearer" in response.headers["www-authenticate"], what
        assert (await http.get(route, headers=bearer(f"{name}:read", audience=name))).status_code == 404  # let in
        for path in OPEN:  # probes, scrapes and the API's description need no token
            assert (await http.get(path)).status_code == 200, path


async def test_an_opinion_shows_the_members_words_only_with_the_text_scope(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
    await upgrade_async(feedback.bootstrap.MIGRATIONS, url)
    service = feedback.bootstrap.build(FeedbackSettings(database_url=url))
    at = datetime(2018, 5, 20, 2, tzinfo=UTC)
    async with service.sessions() as session, session.begin():
        await session.execute(
            insert(feedback_orm.opinions).values(
                opinion_id="o-1",
                member_id="m-1",
                channel="hotline",
                text="My foreman shouts at me",
                submitted_at=at,
                union_id="u-1",
                due_at=at,
                status="responded",
                response_text="We spoke to him",
                responded_at=at,
                overdue=False,
            )
        )
    try:
        async with client(service) as http:
            plain = (await http.get("/opinions/o-1", headers=bearer("feedback:read", audience="feedback"))).json()
            full = (
                await http.get(
                    "/opinions/o-1", headers=bearer("feedback:read", "feedback:read-text", audience="feedback")
                )
            ).json()
    finally:
        await service.engine.dispose()
    assert plain["status"] == "responded" and "text" not in plain and "response_text" not in plain
    assert "My foreman" not in json.dumps(plain)
    assert full["text"] == "My foreman shouts at me" and full["response_text"] == "We spoke to him"


async def test_tokens_signed_with_the_identity_providers_keys_from_a_jwks_file(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1", "alg": "RS256"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1", "alg": "ES256"},
        ]
    }
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await upgrade_async(membership.bootstrap.MIGRATIONS, url)
    auth = AuthSettings(jwks_file=tmp_path / "jwks.json", hs256_secret=None)
    service = membership.bootstrap.build(MembershipSettings(database_url=url, auth=auth))
    claims = {"aud": "membership", "exp": int(time.time()) + 600, "scope": "membership:read"}
    try:
        async with client(service) as http:
            for key, algorithm, kid in ((rsa_key, "RS256", "rsa-1"), (ec_key, "ES256", "ec-1")):
                response = await http.get("/unions/u-404", headers=signed(claims, key, algorithm, kid))
                assert response.status_code == 404, algorithm  # let in: the union is just not there
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            assert (await http.get("/unions/u-404", headers=signed(claims, other, "RS256", "rsa-1"))).status_code == 401
            assert (
                await http.get("/unions/u-404", headers=signed(claims, rsa_key, "RS256", "nope"))
            ).status_code == 401
            # The shared-secret algorithm is not accepted where keys come from a JWKS.
            hs = signed(claims, "a-secret-anyone-could-pick-000000", "HS256", "rsa-1")
            assert (await http.get("/unions/u-404", headers=hs)).status_code == 401
            # A token of one key type naming a key of another is refused, not an error.
            assert (
                await http.get("/unions/u-404", headers=signed(claims, ec_key, "ES256", "rsa-1"))
            ).status_code == 401
            odd_scope = {**claims, "scope": None}
            assert (
                await http.get("/unions/u-404", headers=signed(odd_scope, rsa_key, "RS256", "rsa-1"))
            ).status_code == 401
    finally:
        await service.engine.dispose()


@pytest.mark.parametrize("secret", [None, "", "too-short"])
def test_a_service_with_no_usable_key_to_check_tokens_refuses_to_start(tmp_path: Path, secret: str | None) -> None:
    settings = MembershipSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", auth=AuthSettings(hs256_secret=secret)
    )
    with pytest.raises(AuthNotConfigured):
        membership.bootstrap.build(settings)
