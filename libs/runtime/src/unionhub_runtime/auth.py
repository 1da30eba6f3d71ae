"""Bearer tokens for the read APIs (contract, section "Every service").

Every route but the operational ones (`/healthz`, `/readyz`, `/metrics`, `/asyncapi`) and the
API's own description (`/openapi.json`, `/docs`) needs `Authorization: Bearer <JWT>` signed by
the federation's identity provider: RS256 or ES256 with keys from a JWKS file or URL, or HS256
with a shared secret for local use only. The token must not be expired, its `aud` must name
the service, and its `scope` claim must hold `<service>:read` (401 without a valid token, 403
without the scope). A service with no key configured refuses to start: an open API is never
the silent default.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from fastapi import HTTPException, Request
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ASYMMETRIC = ["RS256", "ES256"]
LOCAL_ALGORITHM = "HS256"
MIN_SECRET_CHARACTERS = 32


class AuthSettings(BaseSettings):
    """Where the signing keys come from (`UNIONHUB_AUTH_*`); exactly one of the three."""

    model_config = SettingsConfigDict(env_prefix="UNIONHUB_AUTH_", extra="ignore")

    jwks_file: Path | None = None
    jwks_url: str | None = None
    hs256_secret: SecretStr | None = Field(default=None, description="local use only: a shared secret")
    issuer: str | None = Field(default=None, description="when set, the `iss` every token must carry")
    leeway_seconds: float = Field(default=30, ge=0, description="clock skew allowed on exp")


class AuthNotConfigured(RuntimeError):
    pass


class Verifier:
    """Checks a token's signature, expiry and audience, and returns its scopes."""

    def __init__(self, settings: AuthSettings, audience: str) -> None:
        given = [settings.jwks_file, settings.jwks_url, settings.hs256_secret]
        if sum(value is not None for value in given) != 1:
            raise AuthNotConfigured(
                "set exactly one of UNIONHUB_AUTH_JWKS_FILE, UNIONHUB_AUTH_JWKS_URL or (local use only) "
                "UNIONHUB_AUTH_HS256_SECRET: the read APIs require signed tokens"
            )
        secret = settings.hs256_secret.get_secret_value() if settings.hs256_secret is not None else None
        if secret is not None and len(secret) < MIN_SECRET_CHARACTERS:
            raise AuthNotConfigured(f"UNIONHUB_AUTH_HS256_SECRET must have at least {MIN_SECRET_CHARACTERS} characters")
        self.audience = audience
        self._issuer = settings.issuer
        self._leeway = settings.leeway_seconds
        self._secret = secret
        self._keys = jwt.PyJWKSet.from_json(settings.jwks_file.read_text()) if settings.jwks_file else None
        # The JWKS is fetched again every 5 minutes (PyJWT's set cache): a key the provider
        # removed stops verifying then. No cache by kid: it would keep removed keys forever.
        self._client = jwt.PyJWKClient(settings.jwks_url, cache_keys=False) if settings.jwks_url else None

    async def scopes(self, token: str) -> set[str]:
        """The token's scopes; raises `jwt.PyJWTError` for a token not to be trusted."""
        if self._secret is not None:
            key: Any = self._secret
            algorithms = [LOCAL_ALGORITHM]
        else:
            jwk = await self._signing_key(token)
            if jwk.algorithm_name not in ASYMMETRIC:
                raise jwt.InvalidTokenError(f"keys of type {jwk.algorithm_name} are not accepted")
            key, algorithms = jwk, [jwk.algorithm_name]  # the key's own algorithm, nothing else
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=self.audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp", "aud", *(["iss"] if self._issuer else [])]},
        )
        scope = claims.get("scope", "")
        if isinstance(scope, str):
            return set(scope.split())
        if isinstance(scope, list) and all(isinstance(item, str) for item in scope):
            return set(scope)
        raise jwt.InvalidTokenError("the scope claim is neither a string nor a list of strings")

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:  # fetches the JWKS over HTTP: off the event loop
            return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        try:
            return self._keys[kid] if kid else next(iter(self._keys.keys))
        except (KeyError, StopIteration):
            raise jwt.InvalidTokenError("no key of the JWKS has this token's kid") from None


@cache  # one callable per scope: FastAPI then checks a request's token once, however often it is required
def requiring(scope: str) -> Callable[[Request], Awaitable[set[str]]]:
    """A FastAPI dependency: the request's scopes, after checking they hold `scope`."""

    async def check(request: Request) -> set[str]:
        verifier: Verifier = request.app.state.verifier
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            scopes = await verifier.scopes(token.strip())
        except (jwt.PyJWTError, TypeError, ValueError):  # a key of another type than the token's, too
            raise HTTPException(
                401, "the token is not valid here", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
        if scope not in scopes:
            raise HTTPException(
                403,
                f"the token lacks the scope {scope}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        return scopes

    return check


def local_token(secret: str, audiences: list[str], scopes: list[str], lifetime_seconds: float = 30 * 86_400) -> str:
    """A token signed with the local shared secret (what `make up` writes to .run/env)."""
    now = int(time.time())
    return jwt.encode(
        {"aud": audiences, "scope": " ".join(scopes), "iat": now, "exp": now + int(lifetime_seconds), "sub": "local"},
        secret,
        algorithm=LOCAL_ALGORITHM,
    )


def all_scopes(services: list[str]) -> list[str]:
    return [f"{service}:read" for service in services] + ["feedback:read-text"]


def main() -> None:
    """`python -m unionhub_runtime.auth`: prints a local token with every scope, signed with
    UNIONHUB_AUTH_HS256_SECRET (what `make up` writes to .run/env as UNIONHUB_TOKEN)."""
    secret = AuthSettings().hs256_secret
    if secret is None:
        raise SystemExit("UNIONHUB_AUTH_HS256_SECRET is not set")
    services = ["membership", "evaluation", "feedback"]
    print(local_token(secret.get_secret_value(), services, all_scopes(services)))


if __name__ == "__main__":
    main()
