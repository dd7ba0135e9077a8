"""The status of the response an ASGI app sends, for middlewares that count requests."""

from __future__ import annotations

from starlette.types import Message, Send


class StatusNotingSend:
    """Wraps ASGI `send` and notes the response's status; 500 until a response starts (an app
    that raises before it responds)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
