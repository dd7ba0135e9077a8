"""What a CLI run's `result` line (and the synthetic assistant error line) means for the client."""

from __future__ import annotations

import re
from typing import Any

import orjson

from shared.errors import CliFailed, FleetError, error_class_for

_EMBEDDED_ERROR = re.compile(r"\{.*\}", re.DOTALL)


def result_error(result: dict[str, Any], assistant: dict[str, Any] | None) -> FleetError:
    """The client-facing error for a `result` line with `is_error: true`."""
    status = result.get("api_error_status")
    upstream = _upstream_error(str(result.get("result") or ""))
    error_type = upstream.get("type") or (assistant or {}).get("api_error_type")
    if isinstance(status, int) or error_type:
        cls = error_class_for(
            error_type=error_type if isinstance(error_type, str) else None,
            status=status if isinstance(status, int) else None,
        )
        message = upstream.get("message") or _default_message(status)
        return cls(str(message))
    reason = result.get("terminal_reason") or result.get("subtype") or "unknown"
    return CliFailed(f"The Claude Code CLI failed ({reason}).")


def _upstream_error(text: str) -> dict[str, Any]:
    """The upstream error object when the CLI quotes the API's error body in its text."""
    match = _EMBEDDED_ERROR.search(text)
    if not match:
        return {}
    try:
        body = orjson.loads(match.group(0))
    except orjson.JSONDecodeError:
        return {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner: dict[str, Any] = body["error"]
        return inner
    return {}


def _default_message(status: object) -> str:
    return f"The upstream API answered with HTTP {status}."
