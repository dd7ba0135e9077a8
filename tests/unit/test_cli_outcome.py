"""A failed CLI run's `result` line becomes the error the client sees.

The line shapes are those of the real CLI (2.1.328) against a fake upstream answering with
each HTTP error: the result carries `api_error_status` and the CLI's own wording in `result`;
the synthetic assistant line before it carries `api_error_type`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.errors import (
    AccountLimitReached,
    AuthenticationFailed,
    BillingError,
    CliFailed,
    FleetError,
    InvalidRequest,
    Overloaded,
    PermissionDenied,
    RateLimited,
)
from worker.cli.outcome import result_error

GATEWAY_HINT = (
    ". This is a server-side issue, usually temporary — try again in a moment. "
    "If it persists, check your inference gateway (127.0.0.1:40123)."
)


def result_line(text: str, status: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "terminal_reason": "api_error",
        "api_error_status": status,
        "result": text,
        "session_id": "s",
        **extra,
    }


def assistant_line(error: str, error_type: str | None, status: int | None) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {"role": "assistant", "model": "<synthetic>", "content": []},
        "error": error,
        "is_api_error_message": True,
        "api_error_type": error_type,
        "api_error_status": status,
    }


def test_a_rejected_request_is_rate_limited_with_the_upstream_message() -> None:
    error = result_error(
        result_line("API Error: Request rejected (429) · Number of requests is too high", 429),
        assistant_line("rate_limit", "rate_limit_error", 429),
        rate_limit=None,
    )
    assert type(error) is RateLimited
    assert error.status_code == 429
    assert error.error_type == "rate_limit_error"
    assert error.message == "Number of requests is too high"
    assert error.retry_after_s is None


def test_a_rejected_account_limit_gives_the_seconds_until_it_resets() -> None:
    rate_limit = {
        "status": "rejected",
        "resetsAt": int(time.time()) + 3600,
        "rateLimitType": "five_hour",
    }
    error = result_error(
        result_line("API Error: Request rejected (429) · Usage limit reached", 429),
        assistant_line("rate_limit", "rate_limit_error", 429),
        rate_limit=rate_limit,
    )
    assert type(error) is AccountLimitReached
    assert error.status_code == 429 and error.error_type == "rate_limit_error"
    assert error.reason == "five_hour"
    assert error.retry_after_s is not None
    assert 3500 < error.retry_after_s <= 3600
    assert not error.transient, "an account limit cools the account; it is no burst to retry"


def test_an_allowed_rate_limit_event_gives_no_retry_after() -> None:
    rate_limit = {"status": "allowed", "resetsAt": int(time.time()) + 3600}
    error = result_error(
        result_line("API Error: Request rejected (429) · Slow down", 429),
        None,
        rate_limit=rate_limit,
    )
    assert error.retry_after_s is None


def test_a_limit_that_already_reset_still_asks_for_a_second() -> None:
    rate_limit = {"status": "rejected", "resetsAt": int(time.time()) - 60}
    error = result_error(
        result_line("API Error: Request rejected (429) · x", 429), None, rate_limit=rate_limit
    )
    assert error.retry_after_s == 1.0


@pytest.mark.parametrize("assistant", [True, False], ids=["with-assistant", "result-only"])
def test_overloaded_says_overloaded_without_the_gateway_address(assistant: bool) -> None:
    error = result_error(
        result_line("API Error: 529 Overloaded" + GATEWAY_HINT, 529),
        assistant_line("server_error", "overloaded_error", 529) if assistant else None,
        rate_limit=None,
    )
    assert type(error) is Overloaded
    assert error.status_code == 529
    assert error.message == "Overloaded"
    assert "127.0.0.1" not in error.message


def test_an_invalid_api_key_is_an_authentication_error_with_a_standard_message() -> None:
    error = result_error(
        result_line("Invalid API key · Fix external API key", 401),
        assistant_line("authentication_failed", "authentication_error", 401),
        rate_limit=None,
    )
    assert type(error) is AuthenticationFailed
    assert error.status_code == 401
    assert error.message == "The worker's Claude account could not authenticate."


def test_an_upstream_500_is_an_internal_server_error() -> None:
    error = result_error(
        result_line("API Error: 500 Internal server error" + GATEWAY_HINT, 500),
        assistant_line("server_error", "api_error", 500),
        rate_limit=None,
    )
    assert type(error) is FleetError
    assert error.status_code == 500
    assert error.error_type == "api_error"
    assert error.message == "Internal server error"


def test_an_upstream_400_passes_its_message_on() -> None:
    error = result_error(
        result_line("API Error: 400 messages.0.content: Field required", 400),
        assistant_line("invalid_request", "invalid_request_error", 400),
        rate_limit=None,
    )
    assert type(error) is InvalidRequest
    assert error.status_code == 400
    assert error.message == "messages.0.content: Field required"


def test_the_assistant_error_type_wins_over_the_status() -> None:
    error = result_error(
        result_line("Failed to authenticate. API Error: 403 No permission here", 403),
        assistant_line("authentication_failed", "permission_error", 403),
        rate_limit=None,
    )
    assert type(error) is PermissionDenied


def test_without_an_assistant_line_the_status_decides() -> None:
    error = result_error(result_line("API Error: 402 Pay up", 402), None, rate_limit=None)
    assert type(error) is BillingError
    assert error.message == "Pay up"


def test_an_empty_error_text_names_the_status() -> None:
    error = result_error(result_line("", 409), None, rate_limit=None)
    assert error.message == "The upstream API answered with HTTP 409."


def test_a_failure_without_an_api_status_is_a_cli_failure() -> None:
    result = result_line(
        "Something broke",
        None,
        subtype="error_during_execution",
        terminal_reason="error_during_execution",
    )
    error = result_error(result, None, rate_limit=None)
    assert type(error) is CliFailed
    assert error.status_code == 500
    assert error.message == "The Claude Code CLI failed (error_during_execution)."


def test_a_failure_without_any_reason_is_still_a_cli_failure() -> None:
    result = {"type": "result", "is_error": True}
    error = result_error(result, None, rate_limit=None)
    assert type(error) is CliFailed
    assert error.message == "The Claude Code CLI failed (unknown)."


@pytest.mark.parametrize(
    ("status", "upstream_message"),
    [(502, "Bad gateway"), (503, "Service unavailable"), (504, "Gateway timed out")],
)
def test_other_server_errors_do_not_leak_the_gateway_address(
    status: int, upstream_message: str
) -> None:
    error = result_error(
        result_line(f"API Error: {status} {upstream_message}" + GATEWAY_HINT, status),
        assistant_line("server_error", "api_error", status),
        rate_limit=None,
    )
    assert "127.0.0.1" not in error.message
    assert "inference gateway" not in error.message
