"""Who is calling: the client key of a request, checked before its body is read.

`KeyGate`, an ASGI middleware, reads the key from the request's headers and looks it up
before any of the body is read: a request without a valid key costs the front end its
headers, never its body (api/app.py says which routes are open). A missing, wrong or revoked
key is 401 authentication_error (OpenAI's shape on its paths, like every error:
api/errors.py). The gate keeps the key in the request's scope; a route that needs it takes
it as a `CallerKey` parameter. `require_admin` also needs the key to be an admin key (403
permission_error). Keys are read from Redis on every request, so a revocation holds on every
front end from the next request on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import refusal_response
from api.services import Services, services_of
from api.telemetry.request_metrics import request_labels
from shared.access.client_keys import ClientKey, KeyStore
from shared.broker.outage import outlasting_outage
from shared.errors import AuthenticationFailed, PermissionDenied

_BEARER = "bearer "
_STATE = "client_key"  # in the ASGI scope's state, kept by KeyGate


def presented_secret(headers: Headers) -> str | None:
    """`x-api-key` (the anthropic SDK), else `Authorization: Bearer` (openai SDK, Claude Code
    with ANTHROPIC_AUTH_TOKEN)."""
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    authorization = headers.get("authorization", "")
    if authorization[: len(_BEARER)].lower() == _BEARER:
        return authorization[len(_BEARER) :].strip() or None
    return None


async def key_of(headers: Headers, key_store: KeyStore) -> ClientKey:
    secret = presented_secret(headers)
    if secret is None:
        raise AuthenticationFailed(
            "This fleet needs an API key: send it as x-api-key or Authorization: Bearer."
        )
    key = await key_store.find(secret)
    if key is None:
        raise AuthenticationFailed("invalid x-api-key")
    return key


class KeyGate:
    """ASGI middleware: the caller's key from the headers, before the app reads the body.

    `is_open(scope)`: a route any caller may use (probes, metrics, the dashboard's page)."""

    def __init__(self, app: ASGIApp, *, is_open: Callable[[Scope], bool]) -> None:
        self.app = app
        self.is_open = is_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_open(scope):
            await self.app(scope, receive, send)
            return
        services = services_of(scope["app"])
        key_store = services.key_store
        if key_store is not None:
            headers = Headers(scope=scope)
            try:
                # A request arriving in a Redis restart waits it out (admission does too).
                key = await outlasting_outage(
                    lambda: key_of(headers, key_store),
                    limit_s=services.settings.redis.outage_grace_s,
                )
            except Exception as refused:  # answered as the app's handlers would, or re-raised
                await refusal_response(refused, scope["path"])(scope, receive, send)
                return
            scope.setdefault("state", {})[_STATE] = key
        await self.app(scope, receive, send)


async def authenticate(request: Request, services: Services) -> ClientKey | None:
    if services.key_store is None:
        return None
    key = request.scope.get("state", {}).get(_STATE)
    if not isinstance(key, ClientKey):  # a keyed route the gate took for open: fail closed
        raise AuthenticationFailed("This fleet needs an API key.")
    request_labels(request).key = key.name
    return key


CallerKey = Annotated[ClientKey | None, Depends(authenticate)]
"""The caller's client key; None when auth is off."""


async def require_admin(request: Request, key: CallerKey) -> None:
    if key is not None and not key.admin:
        raise PermissionDenied(f"{request.url.path} needs an admin key.")
