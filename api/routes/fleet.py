"""GET /v1/fleet: the live workers, their accounts and the lanes' queue depths, as JSON.

Read from Redis on every request (shared.fleet.registry.read_fleet): a worker whose process died
drops out at once, one that stops beating within the heartbeat TTL (shared/fleet/liveness.py).
Redis not answering is a 529 overloaded_error
(api/errors.py maps a Redis outage so; any other Redis error is a 500).
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from api.services import Services
from shared.fleet.registry import read_fleet
from shared.fleet.view import FleetView, fleet_view

router = APIRouter()


@router.get("/v1/fleet")
async def fleet(services: Services) -> FleetView:
    """Workers (account, slots, load, state, cooldown, CLI version), accounts, lanes, totals."""
    snapshot = await read_fleet(
        services.redis, heartbeat_ttl_s=services.settings.worker.heartbeat_ttl_s
    )
    return fleet_view(snapshot, now_s=time.time())
