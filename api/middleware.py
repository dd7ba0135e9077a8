"""Request context: a `request-id` on every response, and the request body size limit."""

from __future__ import annotations

import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from shared.errors import RequestTooLarge
from shared.log import request_id_var


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        token = request_id_var.set(request_id)
        try:
            too_large = self._too_large_error()
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await error_response(too_large)(scope, receive, send)
                return
            await self.app(scope, self._counting(receive), _with_request_id(send, request_id))
        finally:
            request_id_var.reset(token)

    def _too_large_error(self) -> RequestTooLarge:
        return RequestTooLarge(f"Request exceeds the maximum size of {self.max_body_bytes} bytes.")

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise self._too_large_error()
            return message

        return counting_receive


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
