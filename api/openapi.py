"""The served OpenAPI document, made to say what the server really does.

FastAPI's default declares a 422 `HTTPValidationError` that is never sent (api/errors.py turns
validation errors into 400s) and nothing else that can go wrong. This rewrites each operation's
error responses from the rules the routes follow: every error in the Anthropic shape (OpenAI's
on its paths, api/openai/errors.py); 400 where a body or parameter is read, 413 and 415 where a
body is, 404 where an id is looked up, 401/403/429 where a client key is needed, 529 wherever
Redis is used. Streams declare `text/event-stream`, batch creation its body (the route reads it
raw, api/batch_intake.py), and, when auth is on, the key's two spellings as security schemes.

The request schemas state the limits the server holds that the models cannot declare: every
integer fits 64 bits (shared/wire/json_limits.py: signed or unsigned), `max_tokens` is at most
CCFLEET_MAX_TOKENS_LIMIT (api/admission.py `check_limits`), and a POST that reads no body still
takes one in JSON (the CSRF rule of api/middleware.py: every POST is application/json). The
models state their own patterns (base64 data, no NUL where the CLI reads text, the roles of a
chat message); tests/e2e/api_fuzz_hooks.py lists the few rules JSON Schema cannot state.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.openai.errors import is_openai_path
from shared.batches import wire
from shared.wire.json_limits import INT_MAX, INT_MIN

_INT_BOUNDS = {"minimum": INT_MIN, "maximum": INT_MAX}  # what JSON can carry to Redis
# The request fields that CCFLEET_MAX_TOKENS_LIMIT bounds, by schema.
_MAX_TOKENS_FIELDS = {
    "MessagesRequest": ("max_tokens",),
    "ChatCompletionRequest": ("max_tokens", "max_completion_tokens"),
    "ResponsesRequest": ("max_output_tokens",),
}
_IGNORED_BODY: dict[str, Any] = {
    "required": True,
    "description": "ignored, but a POST is application/json (no form can send it cross-site)",
    "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
}
_STREAMING = frozenset(
    {
        ("POST", "/v1/messages"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/{response_id}"),  # a background response, `stream=true`
    }
)
_BATCH_CREATE = "/v1/messages/batches"
# Bodies that name a stored thing, unknown to the key: 404 (previous_response_id, item_reference).
_NAMES_STORED_IN_BODY = frozenset({("POST", "/v1/responses")})
_ERROR_DESCRIPTIONS = {
    "400": "invalid_request_error: the body, a parameter or a header is malformed",
    "401": "authentication_error: no valid client key",
    "403": "permission_error: the key may not do this (admin routes, a model not allowed)",
    "404": "not_found_error: no such id (or it belongs to another key)",
    "413": "request_too_large: the body is over the size limit",
    "415": "invalid_request_error: the body is not application/json",
    "429": "rate_limit_error: a quota or budget is spent (with retry-after)",
    "500": "api_error: an unexpected failure (logged)",
    "503": "overloaded: the front end is at its connection cap (CCFLEET_MAX_CONNECTIONS); on the "
    "OpenAI routes also what Anthropic's 529 is",
    "529": "overloaded_error: no worker free in time, or the queue is unavailable",
}
_ANTHROPIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
        "request_id": {"type": ["string", "null"]},
    },
}
_OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
# Routes whose answers are not errors of the API: readiness, Prometheus' text.
_OWN_ANSWERS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/ready"): {
        "503": {
            "description": "not ready: Redis unreachable or no worker",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    ("GET", "/metrics"): {
        "200": {
            "description": "Prometheus text exposition",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
}
_SECURITY_SCHEMES = {
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


def install_openapi(
    app: FastAPI, *, auth_enabled: bool, keyed: list[APIRouter], max_tokens_limit: int
) -> None:
    """Serve the rewritten document at /openapi.json (built once, on first request); `keyed`
    are the routers that need a client (or admin) key."""
    keyed_paths = {
        route.path for router in keyed for route in router.routes if isinstance(route, APIRoute)
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = truthful(
                document, keyed_paths, auth_enabled=auth_enabled, max_tokens_limit=max_tokens_limit
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def truthful(
    document: dict[str, Any], keyed_paths: set[str], *, auth_enabled: bool, max_tokens_limit: int
) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = _ANTHROPIC_ERROR
    schemas["OpenAIError"] = _OPENAI_ERROR
    schemas["BatchCreateRequest"] = _batch_create_schema()
    _bound_max_tokens(schemas, max_tokens_limit)
    _bound_integers(document)
    if auth_enabled:
        components["securitySchemes"] = _SECURITY_SCHEMES
    for path, operations in document["paths"].items():
        keyed = auth_enabled and path in keyed_paths
        for method, operation in operations.items():
            _describe(operation, path, method.upper(), keyed=keyed)
    return document


def _describe(operation: dict[str, Any], path: str, method: str, *, keyed: bool) -> None:
    if method == "POST" and path == _BATCH_CREATE:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreateRequest"}}
            },
        }
    elif method == "POST" and "requestBody" not in operation:
        operation["requestBody"] = _IGNORED_BODY
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    if (method, path) in _STREAMING:
        responses["200"].setdefault("content", {})["text/event-stream"] = {
            "schema": {"type": "string"}
        }
    for status, answer in _OWN_ANSWERS.get((method, path), {}).items():
        responses[status] = answer
    reference = "OpenAIError" if is_openai_path(path) else "Error"
    error_schema = {"$ref": f"#/components/schemas/{reference}"}
    for status in _error_statuses(operation, path, method, keyed=keyed):
        # A route's own answer for a status (/ready's 503) is not replaced.
        responses.setdefault(
            status,
            {
                "description": _ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": error_schema}},
            },
        )
    if keyed:
        operation["security"] = [{"x-api-key": []}, {"bearer": []}]


def _bound_max_tokens(schemas: dict[str, Any], limit: int) -> None:
    for schema_name, fields in _MAX_TOKENS_FIELDS.items():
        properties = schemas[schema_name]["properties"]
        for field in fields:
            integer = properties[field]
            for choice in integer.get("anyOf", [integer]):  # `int | None` is an anyOf
                if choice.get("type") == "integer":
                    choice["maximum"] = limit


def _bound_integers(node: object) -> None:
    """Every integer of the document within 64 bits, unless it says narrower already."""
    if isinstance(node, list):
        for item in node:
            _bound_integers(item)
    elif isinstance(node, dict):
        if node.get("type") == "integer":
            for bound, value in _INT_BOUNDS.items():
                node.setdefault(bound, value)
        for value in node.values():
            _bound_integers(value)


def _error_statuses(operation: dict[str, Any], path: str, method: str, *, keyed: bool) -> list[str]:
    statuses = ["500"]
    if "requestBody" in operation or operation.get("parameters") or method == "POST":
        statuses.append("400")
    if method == "POST":
        statuses += ["413", "415"]
    if "{" in path or (method, path) in _NAMES_STORED_IN_BODY:
        statuses.append("404")
    if keyed:
        statuses += ["401", "403", "429"]
    statuses.append("503")  # the connection cap (api/connection_limits.py), on every route
    if path.startswith("/v1/") and not is_openai_path(path):
        statuses.append("529")  # OpenAI's shape says 503 for it (api/openai/errors.py)
    return sorted(set(statuses))


def _batch_create_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["requests"],
        "additionalProperties": False,
        "properties": {
            "requests": {
                "type": "array",
                "minItems": 1,
                "maxItems": wire.MAX_REQUESTS,
                "items": {
                    "type": "object",
                    "required": ["custom_id", "params"],
                    "additionalProperties": False,
                    "properties": {
                        "custom_id": {"type": "string", "pattern": f"^{wire.CUSTOM_ID.pattern}$"},
                        # Not MessagesRequest: invalid params do not refuse the batch, they
                        # become that request's `errored` result (api/batch_intake.py).
                        "params": {
                            "type": "object",
                            "description": "a /v1/messages body (MessagesRequest); invalid "
                            "params make an `errored` result",
                        },
                    },
                },
            }
        },
    }
