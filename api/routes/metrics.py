"""GET /metrics: this front end's Prometheus metrics, with the fleet gauges read at the scrape.

Open like /health, for the scraper: it shows key and account names, never a secret.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.admission import FrontEnd, front_end
from shared.fleet.registry import read_fleet
from shared.telemetry.metrics import CONTENT_TYPE

router = APIRouter()


@router.get("/metrics")
async def metrics(fe: Annotated[FrontEnd, Depends(front_end)]) -> Response:
    snapshot = await read_fleet(fe.redis, heartbeat_ttl_s=fe.settings.heartbeat_ttl_s)
    fe.metrics.observe_fleet(snapshot)
    return Response(fe.metrics.exposition(), media_type=CONTENT_TYPE)
