"""Who is calling: the client key of a request, as FastAPI dependencies api/app.py applies.

`authenticate` sets `request.state.client_key` to the caller's ClientKey, or None when auth
is off; a missing, wrong or revoked key is 401 authentication_error (OpenAI's shape on its
paths, like every error: api/errors.py). `require_admin` also needs the key to be an admin
key (403 permission_error). Keys are read from Redis on every request, so a revocation
holds on every front end from the next request on.
"""

from __future__ import annotations

from fastapi import Request

from api.admission import front_end
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


async def authenticate(request: Request) -> None:
    fe = front_end(request)
    request.state.client_key = None
    if fe.key_store is None:
        return
    secret = presented_secret(request)
    if secret is None:
        raise AuthenticationFailed(
            "This fleet needs an API key: send it as x-api-key or Authorization: Bearer."
        )
    key = await fe.key_store.find(secret)
    if key is None:
        raise AuthenticationFailed("invalid x-api-key")
    request.state.client_key = key


async def require_admin(request: Request) -> None:
    await authenticate(request)
    key = request.state.client_key
    if key is not None and not key.admin:
        raise PermissionDenied(f"{request.url.path} needs an admin key.")
