"""The one error hierarchy of ccfleet.

Every error a client can see is a FleetError subclass carrying its Anthropic error type
and HTTP status. `.message` is always safe to show a client. Errors cross Redis as the
Anthropic error JSON (never pickled): `to_body` writes it and `from_body` reads it back.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar


class FleetError(Exception):
    """Root of every ccfleet error: 500 api_error."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        should_retry: bool | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        # False tells clients retrying is pointless (x-should-retry: false).
        self.should_retry = should_retry
        # An upstream failure another attempt (on another account) may not meet.
        self.transient = transient

    def to_error(self) -> dict[str, Any]:
        """The inner `error` object of the Anthropic error body."""
        return {"type": self.error_type, "message": self.message}


class InvalidRequest(FleetError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedMediaType(InvalidRequest):
    """A body that is not `application/json` (a web page's form, `text/plain`)."""

    status_code = 415


class AuthenticationFailed(FleetError):
    status_code = 401
    error_type = "authentication_error"


class BillingError(FleetError):
    status_code = 402
    error_type = "billing_error"


class PermissionDenied(FleetError):
    status_code = 403
    error_type = "permission_error"


class NotFound(FleetError):
    status_code = 404
    error_type = "not_found_error"


class RequestTooLarge(FleetError):
    status_code = 413
    error_type = "request_too_large"


class RateLimited(FleetError):
    status_code = 429
    error_type = "rate_limit_error"


class AccountLimitReached(RateLimited):
    """The worker's account hit its subscription limit; it cools until `resets_at`."""

    def __init__(self, message: str, *, resets_at: float, reason: str) -> None:
        super().__init__(message, retry_after_s=max(1.0, resets_at - time.time()))
        self.resets_at = resets_at
        self.reason = reason


class BudgetSpent(RateLimited):
    """A client key (or every account) spent its monthly budget: nothing runs until the month
    turns, so a batch request ends `errored` rather than waiting."""


class TooManyTokens(RateLimited):
    """The request alone reserves more than its key's tokens per minute: it never fits."""


class UpstreamTimeout(FleetError):
    status_code = 504
    error_type = "timeout_error"


class UpstreamSilent(UpstreamTimeout):
    """The account's upstream sent nothing within the first-byte timeout after the CLI's
    request: the attempt is abandoned, the job tried on another account."""


class Overloaded(FleetError):
    """Queue full, no worker alive, or the upstream said it is overloaded."""

    status_code = 529
    error_type = "overloaded_error"


class CliFailed(FleetError):
    """The claude CLI ended without a usable answer."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class JobTimedOut(FleetError):
    """The job ran past its time limit; the CLI was killed."""

    status_code = 504
    error_type = "timeout_error"


_BY_TYPE: dict[str, type[FleetError]] = {
    cls.error_type: cls
    for cls in (
        InvalidRequest,
        AuthenticationFailed,
        BillingError,
        PermissionDenied,
        NotFound,
        RequestTooLarge,
        RateLimited,
        UpstreamTimeout,
        Overloaded,
    )
}

_BY_STATUS: dict[int, type[FleetError]] = {cls.status_code: cls for cls in _BY_TYPE.values()}


def error_class_for(
    *, error_type: str | None = None, status: int | None = None
) -> type[FleetError]:
    """The FleetError subclass for an Anthropic error type, else for an HTTP status."""
    if error_type in _BY_TYPE:
        return _BY_TYPE[error_type]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return FleetError


def from_error(
    error: dict[str, Any], *, retry_after_s: float | None = None, should_retry: bool | None = None
) -> FleetError:
    """Rebuild a FleetError from the inner `error` object of an Anthropic error body."""
    cls = error_class_for(error_type=str(error.get("type", "")))
    message = str(error.get("message", "Internal server error"))
    return cls(message, retry_after_s=retry_after_s, should_retry=should_retry)
