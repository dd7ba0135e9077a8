"""Request context: a `request-id` on every response; and what a request body may be.

`RequestContextMiddleware` is the outermost: every answer, also a refusal by the checks
that follow it (api/app.py lists them), carries the request's id. `JsonBodyMiddleware` is
the innermost of those checks, so no body is read before the caller's key is (api/auth.py).
A body is JSON: a POST to a route that takes it whose Content-Type is not `application/json`
is 415 (a web page's form or `text/plain` body, which a browser sends cross-site without
asking); a POST no route takes is the router's 404 or 405 (with `Allow`). It reads the
body here, whole, before the app sees it, so a body over the limit is 413 however it is
sent: with a Content-Length (refused before reading) or chunked (refused once the limit is
passed). FastAPI would turn an error raised while it reads into a 400.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.request_id import keep_request_id, new_request_id
from shared.errors import RequestTooLarge, UnsupportedMediaType
from shared.telemetry.log import request_id_var


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        keep_request_id(scope, request_id)
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, _with_request_id(send, request_id))
        finally:
            request_id_var.reset(token)


class JsonBodyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        takes_body: Callable[[Scope], bool],
        max_body_bytes: int,
        path_max_body_bytes: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.takes_body = takes_body  # a POST no route takes is the router's 404 or 405
        self.max_body_bytes = max_body_bytes
        self.path_max_body_bytes = path_max_body_bytes or {}  # larger limits of some paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_max_body_bytes.get(scope["path"], self.max_body_bytes)
        declared = _content_length(scope)
        try:
            if scope["method"] in _WITH_BODY and not _is_json(scope) and self.takes_body(scope):
                raise UnsupportedMediaType("Content-Type: expected application/json.")
            if declared is not None and declared > limit:
                raise _too_large_error(limit)
            replay = await _read_body(receive, limit)
        except (UnsupportedMediaType, RequestTooLarge) as refused:
            await error_response(refused, scope["path"])(scope, receive, send)
            return
        await self.app(scope, replay, send)


# No route takes PUT or PATCH (they answer 405 with `Allow`), and a browser sends neither
# cross-site without a CORS preflight, which the Origin check refuses.
_WITH_BODY = frozenset({"POST"})


def _is_json(scope: Scope) -> bool:
    media_type = Headers(scope=scope).get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == "application/json"


def _too_large_error(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request exceeds the maximum size of {limit} bytes.")


async def _read_body(receive: Receive, limit: int) -> Receive:
    """Read the whole body (at most `limit` bytes); a receive that gives it back in one
    message, then passes through (so the app still hears of a disconnect)."""
    parts: list[bytes] = []
    received = 0
    pending: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            pending.append(message)  # the client left while sending
            break
        body = message.get("body", b"")
        received += len(body)
        if received > limit:
            raise _too_large_error(limit)
        parts.append(body)
        if not message.get("more_body", False):
            break
    pending.insert(0, {"type": "http.request", "body": b"".join(parts), "more_body": False})

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _with_request_id(send: Send, request_id: str) -> Send:
    async def send_with_request_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            if "request-id" not in headers:
                headers["request-id"] = request_id
        await send(message)

    return send_with_request_id
