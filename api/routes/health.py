"""Liveness and readiness, for load balancers and Kubernetes probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.services import Services
from shared.fleet.registry import broken_fleet_error, read_fleet

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: Services) -> JSONResponse:
    """Redis answers and at least one live worker can serve (its CLI runs and is logged in)."""
    try:
        await services.redis.ping()
        fleet = await read_fleet(
            services.redis, heartbeat_ttl_s=services.settings.worker.heartbeat_ttl_s
        )
    except (RedisError, OSError):
        return JSONResponse({"status": "unavailable", "redis": False, "workers": 0}, 503)
    workers = len(fleet.workers)
    if not workers:
        return JSONResponse({"status": "no workers", "redis": True, "workers": 0}, 503)
    broken = broken_fleet_error(fleet)
    if broken is not None:
        body = {
            "status": "no worker can serve",
            "redis": True,
            "workers": workers,
            "reason": broken.message,
        }
        return JSONResponse(body, 503)
    return JSONResponse({"status": "ready", "redis": True, "workers": workers}, 200)
