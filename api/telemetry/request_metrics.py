"""Counts every HTTP request in the front end's metrics: route, status, lane, key, duration.

The route is the matched path template (`/v1/models/{model_id}`), so labels stay few; an
unmatched path is `other`. Lane and key come from what the request's handling set on
`request.state` (api/auth.py, api/admission.py); a key is named, never its secret.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

from api.telemetry.response_status import StatusNotingSend
from shared.access.ledger import NO_KEY
from shared.telemetry.metrics import FleetMetrics


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: FleetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        noting = StatusNotingSend(send)
        try:
            await self.app(scope, receive, noting)
        finally:
            self._count(scope, noting.status, time.monotonic() - started)

    def _count(self, scope: Scope, status: int, elapsed_s: float) -> None:
        route = getattr(scope.get("route"), "path", "other")
        state = scope.get("state", {})
        key = state.get("client_key")
        self.metrics.requests.labels(
            route=route,
            status=str(status),
            lane=state.get("lane", ""),
            key=key.name if key is not None else NO_KEY,
        ).inc()
        self.metrics.request_duration.labels(route=route).observe(elapsed_s)
