"""FleetErrors as OpenAI reports errors, for the OpenAI-compatible routes (/v1/chat/...,
/v1/responses...).

OpenAI's error body is `{"error": {"message", "type", "param", "code"}}`. The status mostly
stays the FleetError's; an Anthropic 529 (overloaded) becomes OpenAI's 503, which OpenAI
clients know to retry. Only api/errors.py calls this: it stays the one place errors become HTTP.
"""

from __future__ import annotations

from typing import Any

from shared.errors import FleetError, UnsupportedMediaType

OPENAI_PATH_PREFIXES = ("/v1/chat/", "/v1/responses")

# Anthropic error type -> (status, OpenAI type, OpenAI code). Anything else: 500 server_error.
_OPENAI_ERRORS: dict[str, tuple[int, str, str | None]] = {
    "invalid_request_error": (400, "invalid_request_error", None),
    "authentication_error": (401, "authentication_error", "invalid_api_key"),
    "billing_error": (402, "billing_error", "insufficient_quota"),
    "permission_error": (403, "permission_error", None),
    "not_found_error": (404, "not_found_error", None),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_error": (429, "requests", "rate_limit_exceeded"),
    "timeout_error": (504, "server_error", "timeout"),
    "overloaded_error": (503, "server_error", "overloaded"),
}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PATH_PREFIXES)


def openai_status(error: FleetError) -> int:
    status, _, _ = _OPENAI_ERRORS.get(error.error_type, (500, "server_error", None))
    if isinstance(error, UnsupportedMediaType):
        return error.status_code  # an invalid request, but one HTTP names on its own (415)
    return status


def openai_error(error: FleetError) -> dict[str, Any]:
    """The inner `error` object of OpenAI's error body."""
    _, error_type, code = _OPENAI_ERRORS.get(error.error_type, (500, "server_error", None))
    return {"message": error.message, "type": error_type, "param": None, "code": code}
