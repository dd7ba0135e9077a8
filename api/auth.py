"""Who is calling: the client key of a request, as FastAPI dependencies.

`authenticate` is the caller's ClientKey, or None when auth is off; a missing, wrong or
revoked key is 401 authentication_error (OpenAI's shape on its paths, like every error:
api/errors.py). api/app.py applies it to whole routers, and a route that needs the key takes
it as a `CallerKey` parameter (FastAPI runs the dependency once per request). `require_admin`
also needs the key to be an admin key (403 permission_error). Keys are read from Redis on
every request, so a revocation holds on every front end from the next request on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.services import Services
from api.telemetry.request_metrics import request_labels
from shared.access.client_keys import ClientKey
from shared.errors import AuthenticationFailed, PermissionDenied

_BEARER = "bearer "


def presented_secret(request: Request) -> str | None:
    """`x-api-key` (the anthropic SDK), else `Authorization: Bearer` (openai SDK, Claude Code
    with ANTHROPIC_AUTH_TOKEN)."""
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    authorization = request.headers.get("authorization", "")
    if authorization[: len(_BEARER)].lower() == _BEARER:
        return authorization[len(_BEARER) :].strip() or None
    return None


async def authenticate(request: Request, services: Services) -> ClientKey | None:
    if services.key_store is None:
        return None
    secret = presented_secret(request)
    if secret is None:
        raise AuthenticationFailed(
            "This fleet needs an API key: send it as x-api-key or Authorization: Bearer."
        )
    key = await services.key_store.find(secret)
    if key is None:
        raise AuthenticationFailed("invalid x-api-key")
    request_labels(request).key = key.name
    return key


CallerKey = Annotated[ClientKey | None, Depends(authenticate)]
"""The caller's client key; None when auth is off."""


async def require_admin(request: Request, key: CallerKey) -> None:
    if key is not None and not key.admin:
        raise PermissionDenied(f"{request.url.path} needs an admin key.")
