"""Limits on connections, held below the app in uvicorn's HTTP protocol.

uvicorn has no header timeout (`timeout_keep_alive` closes only a connection idle between
requests: one sending a header line every few seconds stays open for ever), and its
`limit_concurrency` answers a plain-text 503. This subclass of its httptools protocol (the one
`front_end_server` runs) adds both limits:

- **Header deadline.** A connection must complete a request's headers within
  `header_timeout_s` of opening, and each later request within that long of its first byte, or
  it is closed without an answer. A body is not timed here: it is read by the app, whose
  streams and size limits bound it.
- **Connection cap.** A request that arrives while more than `max_connections` connections are
  open is answered 503 `overloaded_error` (api/errors.py's `server_full_response`, in the
  shape of its path, with `retry-after`) and its connection closed.

It relies on uvicorn's protocol hooks (connection_made, on_message_begin, on_headers_complete,
connection_lost) and its `app` and `connections` attributes; tests/e2e/test_slow_clients.py
pins the behaviour against a real `ccfleet api`, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.errors import server_full_response

logger = logging.getLogger(__name__)


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a connection cap."""

    header_timeout_s: ClassVar[float]
    max_connections: ClassVar[int]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._app_within_limits = self.app
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own signature narrows BaseTransport so
        super().connection_made(transport)
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        over_cap = len(self.connections) > self.max_connections
        # uvicorn starts the request with whatever `app` holds now.
        self.app = refuse_connection if over_cap else self._app_within_limits
        if over_cap:
            logger.warning("%d connections open: a request refused", len(self.connections))
        super().on_headers_complete()

    def _start_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_timeout_s, self._headers_too_slow
            )

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            logger.info("closed a connection: no complete headers in %.0f s", self.header_timeout_s)
            self.transport.close()


async def refuse_connection(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app that answers a request on a connection beyond the cap."""
    await server_full_response(scope["path"])(scope, receive, send)


def limited_http_protocol(
    *, header_timeout_s: float, max_connections: int
) -> type[LimitedHttpProtocol]:
    """The protocol class for uvicorn's `http=`: uvicorn builds it with its own arguments, so
    the limits ride on the class."""

    class Limited(LimitedHttpProtocol):
        pass

    Limited.header_timeout_s = header_timeout_s
    Limited.max_connections = max_connections
    return Limited
