"""Counts every HTTP request in the front end's metrics: route, status, lane, key, duration.

The route is the matched path template (`/v1/models/{model_id}`), so labels stay few; an
unmatched path is `other`. Lane and key are what the request's handling learns: it notes
them on the request's `RequestLabels` (api/auth.py the key, api/admission.py the lane); a
key is named, never its secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.telemetry.response_status import StatusNotingSend
from shared.access.ledger import NO_KEY
from shared.telemetry.metrics import FleetMetrics

_LABELS_STATE = "metric_labels"  # in the ASGI scope's state


@dataclass
class RequestLabels:
    lane: str = ""
    key: str = NO_KEY


def request_labels(request: Request) -> RequestLabels:
    """The labels this request is counted with, for its handling to fill in (a throwaway
    for a request the middleware does not see)."""
    labels = request.scope.get("state", {}).get(_LABELS_STATE)
    return labels if isinstance(labels, RequestLabels) else RequestLabels()


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: FleetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        labels = RequestLabels()
        scope.setdefault("state", {})[_LABELS_STATE] = labels
        noting = StatusNotingSend(send)
        try:
            await self.app(scope, receive, noting)
        finally:
            self._count(scope, labels, noting.status, time.monotonic() - started)

    def _count(self, scope: Scope, labels: RequestLabels, status: int, elapsed_s: float) -> None:
        route = getattr(scope.get("route"), "path", "other")
        self.metrics.requests.labels(
            route=route, status=str(status), lane=labels.lane, key=labels.key
        ).inc()
        self.metrics.request_duration.labels(route=route).observe(elapsed_s)
