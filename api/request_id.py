"""A request's id (`req_…`): made by api/middleware.py for every request and kept in its ASGI
scope, for code that runs outside that middleware (Starlette's outermost error handler)."""

from __future__ import annotations

import secrets

from starlette.types import Scope

_STATE = "request_id"  # in the ASGI scope's state


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def keep_request_id(scope: Scope, request_id: str) -> None:
    scope.setdefault("state", {})[_STATE] = request_id


def kept_request_id(scope: Scope) -> str | None:
    request_id = scope.get("state", {}).get(_STATE)
    return request_id if isinstance(request_id, str) else None
