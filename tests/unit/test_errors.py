"""The error hierarchy: errors cross Redis as Anthropic error JSON and come back as themselves;
validation problems are told to the client by field path."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.errors import validation_message
from shared import errors
from shared.errors import (
    AccountLimitReached,
    AuthenticationFailed,
    BillingError,
    CliFailed,
    FleetError,
    InvalidRequest,
    JobTimedOut,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    UnsupportedMediaType,
    UpstreamTimeout,
    error_class_for,
    from_error,
)
from shared.wire.messages import MessagesRequest


def all_error_classes() -> list[type[FleetError]]:
    found: list[type[FleetError]] = []
    pending: list[type[FleetError]] = [FleetError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


# The one class each Anthropic error type comes back as.
CANONICAL = [
    (InvalidRequest, "invalid_request_error", 400),
    (AuthenticationFailed, "authentication_error", 401),
    (BillingError, "billing_error", 402),
    (PermissionDenied, "permission_error", 403),
    (NotFound, "not_found_error", 404),
    (RequestTooLarge, "request_too_large", 413),
    (RateLimited, "rate_limit_error", 429),
    (UpstreamTimeout, "timeout_error", 504),
    (Overloaded, "overloaded_error", 529),
    (FleetError, "api_error", 500),
]


def test_every_error_class_defined_is_covered_here() -> None:
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, FleetError)
    }
    assert defined == set(all_error_classes())


@pytest.mark.parametrize(("cls", "error_type", "status"), CANONICAL)
def test_an_error_type_maps_to_its_class(
    cls: type[FleetError], error_type: str, status: int
) -> None:
    assert error_class_for(error_type=error_type) is cls
    assert (cls.error_type, cls.status_code) == (error_type, status)


@pytest.mark.parametrize(("cls", "error_type", "status"), CANONICAL)
def test_a_status_maps_to_its_class(cls: type[FleetError], error_type: str, status: int) -> None:
    assert error_class_for(status=status) is cls


def test_the_error_type_wins_over_the_status() -> None:
    assert error_class_for(error_type="rate_limit_error", status=500) is RateLimited


def test_an_unknown_type_falls_back_to_the_status() -> None:
    assert error_class_for(error_type="brand_new_error", status=529) is Overloaded


def test_unknown_type_and_status_map_to_the_root() -> None:
    assert error_class_for(error_type="brand_new_error", status=418) is FleetError
    assert error_class_for() is FleetError


# Refused by the front end before any job exists (api/middleware.py): never sent across Redis.
EDGE_ONLY = {UnsupportedMediaType}


@pytest.mark.parametrize(
    "cls", [c for c in all_error_classes() if c not in EDGE_ONLY], ids=lambda cls: cls.__name__
)
def test_every_error_survives_the_trip_through_redis(cls: type[FleetError]) -> None:
    if cls is AccountLimitReached:
        original: FleetError = AccountLimitReached(
            "Something precise went wrong.", resets_at=time.time() + 60, reason="five_hour"
        )
    else:
        original = cls("Something precise went wrong.")
    wire = orjson.loads(orjson.dumps(original.to_error()))
    rebuilt = from_error(wire, retry_after_s=7.0)
    assert wire == {"type": cls.error_type, "message": "Something precise went wrong."}
    assert (rebuilt.error_type, rebuilt.status_code) == (cls.error_type, cls.status_code)
    assert rebuilt.message == original.message
    assert rebuilt.retry_after_s == 7.0


@pytest.mark.parametrize(("cls", "error_type", "status"), CANONICAL)
def test_a_canonical_error_comes_back_as_its_own_class(
    cls: type[FleetError], error_type: str, status: int
) -> None:
    assert type(from_error(cls("x").to_error())) is cls


def test_internal_errors_come_back_as_their_public_kind() -> None:
    assert type(from_error(CliFailed("CLI died", exit_code=3).to_error())) is FleetError
    assert type(from_error(JobTimedOut("Too slow").to_error())) is UpstreamTimeout


def test_a_retry_after_is_carried_by_the_error() -> None:
    error = RateLimited("Slow down", retry_after_s=30.0)
    assert error.retry_after_s == 30.0
    assert error.to_error() == {"type": "rate_limit_error", "message": "Slow down"}


def test_a_malformed_error_object_still_gives_an_error() -> None:
    rebuilt = from_error({})
    assert type(rebuilt) is FleetError
    assert rebuilt.message == "Internal server error"


def request_validation_error(body: Any) -> RequestValidationError:
    """What FastAPI raises for this body: pydantic's errors located under "body"."""
    try:
        MessagesRequest.model_validate(body)
    except ValidationError as exc:
        problems = [{**problem, "loc": ("body", *problem["loc"])} for problem in exc.errors()]
        return RequestValidationError(problems, body=body)
    raise AssertionError(f"{body!r} is valid")


def body(**fields: Any) -> dict[str, Any]:
    valid: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return {**valid, **fields}


def test_validation_message_names_a_missing_field_by_its_path() -> None:
    message = validation_message(request_validation_error(body(messages=[{"role": "user"}])))
    assert message == "messages.0.content: Field required"


def test_validation_message_names_a_field_of_the_wrong_type() -> None:
    message = validation_message(request_validation_error(body(max_tokens="lots")))
    assert message.startswith("max_tokens: ")
    assert "integer" in message


def test_validation_message_names_an_unknown_block_type() -> None:
    content = [{"type": "text", "text": "ok"}, {"type": "hologram", "data": "?"}]
    message = validation_message(
        request_validation_error(body(messages=[{"role": "user", "content": content}]))
    )
    assert "messages.0.content" in message
    assert "'hologram'" in message
    assert "body" not in message


def test_validation_message_names_an_unknown_field() -> None:
    message = validation_message(request_validation_error(body(temprature=0.5)))
    assert message.startswith("temprature: ")


def test_validation_message_lists_at_most_three_problems() -> None:
    message = validation_message(request_validation_error({"messages": "no", "extra": 1, "x": 2}))
    assert message.count("; ") == 2


def test_validation_message_says_when_the_body_is_not_json() -> None:
    # The shape FastAPI gives a body it could not decode.
    exc = RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 14),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting value"},
            }
        ],
        body='{"model": "x",',
    )
    assert validation_message(exc) == "The request body is not valid JSON."


def test_validation_message_path_has_no_pydantic_union_tags() -> None:
    content = [{"type": "hologram"}]
    message = validation_message(
        request_validation_error(body(messages=[{"role": "user", "content": content}]))
    )
    assert "tagged-union" not in message
    assert "messages.0.content.0" in message
