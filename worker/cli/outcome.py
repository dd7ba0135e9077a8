"""What a CLI run's `result` line (and its synthetic assistant error line) means for the client.

Failed runs end with `result.is_error` and `api_error_status` (the upstream HTTP status);
the result text is the CLI's own wording, e.g. "API Error: 400 <upstream message>" or
"API Error: Server is temporarily limiting requests (not your usage limit) · <message>".
"""

from __future__ import annotations

import re
from typing import Any

from shared.errors import AccountLimitReached, CliFailed, FleetError, error_class_for

_STANDARD_MESSAGES = {
    401: "The worker's Claude account could not authenticate.",
    500: "Internal server error",
    529: "Overloaded",
}
_STATUS_PREFIX = re.compile(r"^\d{3} ")


_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


def result_error(
    result: dict[str, Any], assistant: dict[str, Any] | None, *, rate_limit: dict[str, Any] | None
) -> FleetError:
    """The client-facing error for a `result` line with `is_error: true`."""
    status = result.get("api_error_status")
    api_error_type = (assistant or {}).get("api_error_type") or result.get("api_error_type")
    if not isinstance(status, int):
        reason = result.get("terminal_reason") or result.get("subtype") or "unknown"
        return CliFailed(f"The Claude Code CLI failed ({reason}).")
    message = _message(status, str(result.get("result") or ""))
    limit = _account_limit(rate_limit, message)
    if limit is not None:
        return limit
    cls = error_class_for(
        error_type=api_error_type if isinstance(api_error_type, str) else None, status=status
    )
    return cls(message, transient=status in _TRANSIENT_STATUSES)


def _account_limit(rate_limit: dict[str, Any] | None, message: str) -> AccountLimitReached | None:
    """The CLI's structured `rate_limit_event` with status `rejected` (a subscription limit)."""
    if not rate_limit or rate_limit.get("status") != "rejected":
        return None
    resets_at = rate_limit.get("resetsAt")
    if not isinstance(resets_at, int | float):
        return None
    reason = str(rate_limit.get("rateLimitType") or "unknown")
    return AccountLimitReached(message, resets_at=float(resets_at), reason=reason)


def _message(status: int, text: str) -> str:
    if status in _STANDARD_MESSAGES:
        return _STANDARD_MESSAGES[status]
    if status >= 500:
        # The CLI's wording of server errors names the worker's gateway address.
        return f"The upstream API failed with HTTP {status}."
    # "API Error: 400 <upstream message>" or "API Error: <CLI's summary> · <upstream message>"
    quoted = text.strip().removeprefix("API Error: ")
    _summary, dot, after = quoted.partition(" · ")
    quoted = after if dot else _STATUS_PREFIX.sub("", quoted)
    return quoted.strip() or f"The upstream API answered with HTTP {status}."
