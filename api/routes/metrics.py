"""GET /metrics: this front end's Prometheus metrics, with the fleet gauges read at the scrape.

It shows key and account names (never a secret), so with auth on it needs an admin key, as
/v1/fleet does: the scraper presents one (README "Metrics").
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.services import Services
from shared.fleet.registry import read_fleet
from shared.telemetry.metrics import CONTENT_TYPE

router = APIRouter()


@router.get("/metrics")
async def metrics(services: Services) -> Response:
    snapshot = await read_fleet(
        services.redis, heartbeat_ttl_s=services.settings.worker.heartbeat_ttl_s
    )
    services.metrics.observe_fleet(snapshot)
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
