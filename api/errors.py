"""The only place where exceptions become error responses or SSE error events.

Errors come out in the Anthropic shape, except on the OpenAI-compatible paths (`/v1/chat/...`,
`/v1/responses...`),
where `error_payload` gives OpenAI's shape (api/openai/errors.py); it is keyed off the path.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sse_starlette import ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.openai.errors import is_openai_path, openai_error, openai_status
from api.relay.disconnect import ClientDisconnected
from api.request_id import kept_request_id
from shared.broker.outage import OUTAGE_ERRORS
from shared.errors import FleetError, InvalidRequest, NotFound, Overloaded, error_class_for
from shared.telemetry.log import request_id_var
from shared.wire.json_limits import FIELD_ERROR

logger = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499


def error_body(error: FleetError) -> dict[str, object]:
    return {"type": "error", "error": error.to_error(), "request_id": request_id_var.get()}


def error_payload(error: FleetError, path: str = "") -> tuple[int, dict[str, object]]:
    """The status and JSON body of an error on `path`: OpenAI's shape on its paths, else ours."""
    if is_openai_path(path):
        return openai_status(error), {"error": openai_error(error)}
    return error.status_code, error_body(error)


def error_response(error: FleetError, path: str = "") -> Response:
    status, body = error_payload(error, path)
    headers = {"request-id": request_id_var.get() or ""}
    if is_openai_path(path):
        headers["x-request-id"] = headers["request-id"]  # where OpenAI clients look for it
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after_s)))
    if error.should_retry is not None:
        headers["x-should-retry"] = "true" if error.should_retry else "false"
    return Response(
        content=orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


SERVER_FULL = 503
"""A front end at its connection cap (api/connection_limits.py): the status a full server gives,
with the `overloaded_error` body, which Anthropic's and OpenAI's clients both retry."""


def server_full_response(path: str) -> Response:
    """The answer on a connection beyond the cap; the connection closes after it."""
    full = Overloaded(
        "This front end has too many open connections; please retry.", retry_after_s=1
    )
    response = error_response(full, path)
    response.status_code = SERVER_FULL
    response.headers["connection"] = "close"
    return response


def refusal_response(exc: Exception, path: str) -> Response:
    """The answer to `exc` raised in one of our middlewares, before the app's handlers
    (below) could see it: what they would answer. Anything but a FleetError or a Redis outage
    is raised again, for the catch-all."""
    if isinstance(exc, FleetError):
        return error_response(exc, path)
    if isinstance(exc, OUTAGE_ERRORS):
        return error_response(_outage(exc), path)
    raise exc


def _outage(exc: Exception) -> Overloaded:
    # Only an outage is worth a retry; any other RedisError is a 500 (on_unexpected).
    logger.warning("redis unavailable: %s", type(exc).__name__)
    return Overloaded("The job queue is unavailable; please retry.", retry_after_s=1)


def failure_event(exc: Exception, path: str = "") -> ServerSentEvent:
    """Any failure after the stream started (`mid_stream_error`). A stream never ends
    silently cut."""
    return error_event(mid_stream_error(exc), path)


def mid_stream_error(exc: Exception) -> FleetError:
    """A failure after the stream started: a FleetError as it is, anything else (its
    traceback logged) as the catch-all's 500."""
    if isinstance(exc, FleetError):
        return exc
    logger.error("unhandled error mid-stream", exc_info=exc)
    return FleetError("Internal server error")


def error_event(error: FleetError, path: str = "") -> ServerSentEvent:
    """An error after the stream started: `event: error` with the same JSON.

    On the OpenAI paths, an unnamed `data: {"error": {...}}` event, which OpenAI's SDKs raise.
    """
    _, body = error_payload(error, path)
    if is_openai_path(path):
        return ServerSentEvent(data=orjson.dumps(body).decode())
    return ServerSentEvent(event="error", data=orjson.dumps(body).decode())


# Parts pydantic adds to an error's location to name the union member that failed.
_UNION_MEMBER = re.compile(
    r"^(str|int|float|bool|none|dict\[.*|list\[.*|tagged-union\[.*|function-.*)$"
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_SCALAR_MEMBERS = frozenset({"str", "int", "float", "bool", "none"})
# Where FastAPI found a field: the field's name says enough.
_REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


def validation_message(exc: RequestValidationError) -> str:
    """`messages.0.content: Field required`: the field path, then what is wrong with it."""
    errors = exc.errors()
    if any(problem.get("type") == "json_invalid" for problem in errors):
        return "The request body is not valid JSON."
    if len(errors) > 1:
        # For `str | list[...]`, the member the input was not meant for only adds noise.
        errors = [e for e in errors if not _scalar_member(e.get("loc", ()))] or errors
        # A value of the right type that breaks a rule beats "should be a valid list" from
        # the union member it was not meant for.
        errors = [e for e in errors if not str(e.get("type", "")).endswith("_type")] or errors
    problems = []
    for problem in errors[:3]:
        if problem.get("type") == FIELD_ERROR:
            problems.append(str(problem.get("msg")))  # names its field itself
            continue
        location = [
            str(part)
            for index, part in enumerate(problem.get("loc", ()))
            if not (index == 0 and part in _REQUEST_PARTS)
            and not (isinstance(part, str) and _UNION_MEMBER.match(part))
        ]
        field = ".".join(location) or "body"
        problems.append(f"{field}: {problem.get('msg', 'invalid value')}")
    return "; ".join(problems) or "Invalid request."


def _scalar_member(location: Sequence[object]) -> bool:
    return bool(location) and location[-1] in _SCALAR_MEMBERS


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path: Starlette's 405 names only the first
    matching route's, and the batch routes share paths across routers' methods."""
    routes = request.app.routes
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    async def on_fleet_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FleetError)
        return error_response(exc, request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(InvalidRequest(validation_message(exc)), request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if exc.status_code == 404:
            return error_response(NotFound(f"Not found: {request.method} {path}"), path)
        cls = error_class_for(status=exc.status_code)
        error = cls(str(exc.detail)) if cls is not FleetError else InvalidRequest(str(exc.detail))
        response = error_response(error, path)
        response.status_code = exc.status_code
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["allow"] = ", ".join(allowed_methods(request))
        return response

    async def on_client_gone(_request: Request, _exc: Exception) -> Response:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody reads it

    async def on_redis_outage(request: Request, exc: Exception) -> Response:
        return error_response(_outage(exc), request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette runs this outside every middleware, where the request-id variable holds
        # whatever the connection's context had (an earlier request's id on a keep-alive
        # connection): take the id this request was given (api/middleware.py).
        request_id_var.set(kept_request_id(request.scope))
        logger.error("unhandled error", exc_info=exc)
        return error_response(FleetError("Internal server error"), request.url.path)

    app.add_exception_handler(FleetError, on_fleet_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnected, on_client_gone)
    for outage in OUTAGE_ERRORS:
        app.add_exception_handler(outage, on_redis_outage)
    app.add_exception_handler(Exception, on_unexpected)
