"""Reading a new batch: which problems refuse the whole batch, which become `errored` results.

As the Anthropic API does: a body that is not `{"requests": [...]}`, a request without a
`custom_id` or `params` object, a malformed or repeated `custom_id`, no requests or more than
100,000 refuse the batch (400). Each request's `params` are validated like `/v1/messages`
(also a model the caller's key may not use, and max_tokens over the fleet's limit); invalid
ones do not refuse the batch: that request's result is `errored` and it never runs.

Memory: the body is read once (the front end's middleware hands it over in one piece), parsed
once (the bytes are then dropped), and each request is re-serialised one at a time as the
store writes it, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from api.errors import validation_message
from api.routes.messages import ensure_answerable
from shared.access.client_keys import ClientKey
from shared.batches import wire
from shared.batches.store import StoredRequest
from shared.errors import FleetError, InvalidRequest, PermissionDenied
from shared.wire.json_limits import check_json_limits
from shared.wire.messages import MessagesRequest


async def read_batch_body(request: Request) -> tuple[list[Any], int]:
    """The `requests` list of a create body, its shape checked (the batch's 400s), and the
    body's size."""
    pieces = [piece async for piece in request.stream()]
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)  # one piece: no copy
    del pieces
    size = len(body)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    del body
    if not isinstance(parsed, dict) or not isinstance(parsed.get("requests"), list):
        raise InvalidRequest("requests: Field required (a list of {custom_id, params}).")
    extra = sorted(set(parsed) - {"requests"})
    if extra:
        raise InvalidRequest(f"{extra[0]}: Extra inputs are not permitted")
    items: list[Any] = parsed["requests"]
    _check_items(items)
    return items, size


def _check_items(items: list[Any]) -> None:
    if not items:
        raise InvalidRequest("requests: List should have at least 1 item.")
    if len(items) > wire.MAX_REQUESTS:
        raise InvalidRequest(
            f"requests: a batch holds at most {wire.MAX_REQUESTS} requests, got {len(items)}."
        )
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"requests.{index}"
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            raise InvalidRequest(f"{where}.params: Field required (an object).")
        extra = sorted(set(item) - {"custom_id", "params"})
        if extra:
            raise InvalidRequest(f"{where}.{extra[0]}: Extra inputs are not permitted")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not wire.CUSTOM_ID.fullmatch(custom_id):
            raise InvalidRequest(
                f"{where}.custom_id: 1 to 64 characters of letters, digits, `_` and `-`."
            )
        if custom_id in seen:
            raise InvalidRequest(
                f"{where}.custom_id: {custom_id!r} is used twice; custom_id must be unique."
            )
        seen.add(custom_id)
        _check_storable(item["params"], f"{where}.params")


def _check_storable(params: dict[str, Any], where: str) -> None:
    """Refuse the batch if a request's params could not be written back as JSON: the store
    writes each request before its params are validated (`stored_requests`)."""
    try:
        check_json_limits(params)
    except PydanticCustomError as exc:
        context = exc.context or {}
        field = str(context.get("field", "body"))
        named = where if field == "body" else f"{where}.{field}"
        problem = context.get("problem", "cannot be stored as JSON")
        raise InvalidRequest(f"{named}: {problem}") from exc


@dataclass(frozen=True)
class RequestRules:
    """What a batch's requests may ask for beyond the Messages model: the caller's key (None
    when auth is off) and the fleet's max_tokens limit."""

    key: ClientKey | None
    max_tokens_limit: int


def stored_requests(items: list[Any], rules: RequestRules) -> Iterator[StoredRequest]:
    """Each request as the store keeps it, with an `errored` result if its params are invalid.
    Items are dropped from `items` as they are stored, so the batch is held once."""
    for index in range(len(items)):
        item, items[index] = items[index], None
        body = orjson.dumps(item)
        refused = params_problem(item["params"], rules)
        line = None
        if refused is not None:
            line = wire.result_line(item["custom_id"], wire.errored(refused.to_error()))
        yield StoredRequest(index, body, line)


def params_problem(params: dict[str, Any], rules: RequestRules) -> FleetError | None:
    """What `/v1/messages` would refuse in these params, if anything."""
    try:
        request = MessagesRequest.model_validate(params)
    except ValidationError as exc:
        return InvalidRequest(validation_message(RequestValidationError(exc.errors())))
    if rules.key is not None and not rules.key.allows_model(request.model):
        return PermissionDenied(f"This API key may not use the model {request.model!r}.")
    if request.max_tokens > rules.max_tokens_limit:
        return InvalidRequest(
            f"max_tokens: must be at most {rules.max_tokens_limit}, got {request.max_tokens}."
        )
    try:
        ensure_answerable(request)
    except InvalidRequest as problem:
        return problem
    return None
