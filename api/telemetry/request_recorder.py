"""Adds every Messages, Chat Completions and Responses request that ends to the shared rollup
(shared/telemetry/request_stats.py) behind the dashboard's request rate, TTFT and error rate.

The middleware puts a RequestTiming on the request's state as the request arrives; the job's
relay stops its clock at the first token (shared/telemetry/first_token.py) and marks an error
that ends the reply, even one sent as an SSE error event after a 200. When the response is
complete, the middleware hands the outcome to the front end's writer
(api/telemetry/request_stats_writer.py), which adds it to Redis with others: after the client
has its last byte, and without holding the request, so it adds nothing to a reply's latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.telemetry.request_stats_writer import RequestStatsWriter
from api.telemetry.response_status import StatusNotingSend
from shared.telemetry.first_token import FirstTokenClock
from shared.telemetry.request_stats import RequestOutcome

RECORDED_PATHS = frozenset({"/v1/messages", "/v1/chat/completions", "/v1/responses"})
_TIMING_STATE = "timing"  # in the ASGI scope's state


@dataclass
class RequestTiming:
    first_token: FirstTokenClock = field(default_factory=FirstTokenClock)
    error_status: int | None = None

    def failed(self, status: int) -> None:
        if self.error_status is None:
            self.error_status = status

    def outcome(self, response_status: int) -> RequestOutcome:
        ttft_s = self.first_token.ttft_s
        ttft_ms = ttft_s * 1000 if ttft_s is not None else None
        return RequestOutcome(
            ended_at_s=time.time(), status=self.error_status or response_status, ttft_ms=ttft_ms
        )


def request_timing(request: Request) -> RequestTiming:
    """The timing the middleware started, or a new one nobody records (paths not recorded)."""
    timing = request.scope.get("state", {}).get(_TIMING_STATE)
    return timing if isinstance(timing, RequestTiming) else RequestTiming()


class RequestRecorderMiddleware:
    def __init__(self, app: ASGIApp, *, writer: Callable[[], RequestStatsWriter]) -> None:
        """`writer`: the front end's, once its lifespan has built it."""
        self.app = app
        self._writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in RECORDED_PATHS:
            await self.app(scope, receive, send)
            return
        timing = RequestTiming()
        scope.setdefault("state", {})[_TIMING_STATE] = timing
        noting = StatusNotingSend(send)
        try:
            await self.app(scope, receive, noting)
        finally:
            self._writer().add(timing.outcome(noting.status))
