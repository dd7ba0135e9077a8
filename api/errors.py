"""The only place where exceptions become Anthropic error responses or SSE error events."""

from __future__ import annotations

import logging
import math

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sse_starlette import ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.disconnect import ClientDisconnected
from shared.errors import FleetError, InvalidRequest, NotFound, error_class_for
from shared.log import request_id_var

logger = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499


def error_body(error: FleetError) -> dict[str, object]:
    return {"type": "error", "error": error.to_error(), "request_id": request_id_var.get()}


def error_response(error: FleetError) -> Response:
    headers = {"request-id": request_id_var.get() or ""}
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after_s)))
    return Response(
        content=orjson.dumps(error_body(error)),
        status_code=error.status_code,
        media_type="application/json",
        headers=headers,
    )


def error_event(error: FleetError) -> ServerSentEvent:
    """An error after the stream started: `event: error` with the same JSON."""
    return ServerSentEvent(event="error", data=orjson.dumps(error_body(error)).decode())


def validation_message(exc: RequestValidationError) -> str:
    """`messages.0.content: Field required`: the field path, then what is wrong with it."""
    problems = []
    for problem in exc.errors()[:3]:
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        if problem.get("type") == "json_invalid":
            return "The request body is not valid JSON."
        field = ".".join(location) or "body"
        problems.append(f"{field}: {problem.get('msg', 'invalid value')}")
    return "; ".join(problems) or "Invalid request."


def install_error_handlers(app: FastAPI) -> None:
    async def on_fleet_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FleetError)
        return error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(InvalidRequest(validation_message(exc)))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return error_response(NotFound(f"Not found: {request.method} {request.url.path}"))
        cls = error_class_for(status=exc.status_code)
        error = cls(str(exc.detail)) if cls is not FleetError else InvalidRequest(str(exc.detail))
        response = error_response(error)
        response.status_code = exc.status_code
        return response

    async def on_client_gone(_request: Request, _exc: Exception) -> Response:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody reads it

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        logger.error("unhandled error", exc_info=exc)
        return error_response(FleetError("Internal server error"))

    app.add_exception_handler(FleetError, on_fleet_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnected, on_client_gone)
    app.add_exception_handler(Exception, on_unexpected)
