"""Adds every Messages, Chat Completions and Responses request that ends to the shared rollup
(shared/telemetry/request_stats.py) behind the dashboard's request rate, TTFT and error rate.

The middleware puts a RequestTiming on the request's state as the request arrives; the job's
relay stops its clock at the first token (shared/telemetry/first_token.py) and marks an error
that ends the reply, even one sent as an SSE error event after a 200. When the response is
complete, the middleware writes the outcome to Redis: after the client has its last byte, so
it adds nothing to a reply's latency. A Redis that does not answer costs the dashboard a
sample, never the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.telemetry.response_status import StatusNotingSend
from shared.telemetry.first_token import FirstTokenClock
from shared.telemetry.request_stats import RequestOutcome, record_request

logger = logging.getLogger(__name__)

RECORDED_PATHS = frozenset({"/v1/messages", "/v1/chat/completions", "/v1/responses"})
RECORD_TIMEOUT_S = 1.0
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
    def __init__(self, app: ASGIApp, *, redis: Callable[[], Redis]) -> None:
        """`redis`: the front end's client, once its lifespan has built it."""
        self.app = app
        self._redis = redis

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
            await self._record(timing.outcome(noting.status))

    async def _record(self, outcome: RequestOutcome) -> None:
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                await record_request(self._redis(), outcome)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("request not added to the dashboard's figures: %s", type(exc).__name__)
