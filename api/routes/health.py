"""Liveness and readiness, for load balancers and Kubernetes probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.admission import FrontEnd, front_end
from shared.fleet import live_worker_count

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(fe: Annotated[FrontEnd, Depends(front_end)]) -> JSONResponse:
    """Redis answers and at least one worker is alive."""
    try:
        await fe.redis.ping()
        workers = await live_worker_count(fe.redis, heartbeat_ttl_s=fe.settings.heartbeat_ttl_s)
    except (RedisError, OSError):
        return JSONResponse({"status": "unavailable", "redis": False, "workers": 0}, 503)
    status = 200 if workers > 0 else 503
    body = {"status": "ready" if workers else "no workers", "redis": True, "workers": workers}
    return JSONResponse(body, status)
