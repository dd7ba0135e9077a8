"""GET /dashboard: the operator's page, and GET /dashboard/events, the SSE stream feeding it.

The page and its two assets are static files (api/dashboard/static/): no build step. The
stream sends a `snapshot` event (a DashboardView) every CCFLEET_DASHBOARD_INTERVAL_S and ends
after CCFLEET_DASHBOARD_STREAM_S, when the page reconnects: so a draining front end waits for
an open dashboard no longer than that, and the page moves to another front end.

Two routers, so api/app.py decides access as for every route: the page and its assets are
open (they hold no data), the events need an admin key when auth is on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.dashboard.view import assemble_dashboard
from api.errors import error_event
from api.services import Services
from shared.errors import NotFound, Overloaded

page_router = APIRouter()
events_router = APIRouter()

STATIC_DIR = Path(__file__).parent.parent / "dashboard" / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
NO_CACHE = {"cache-control": "no-cache"}


@page_router.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=NO_CACHE)


@page_router.get("/dashboard/assets/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"Not found: GET /dashboard/assets/{name}")
    return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=NO_CACHE)


@events_router.get("/dashboard/events", include_in_schema=False)
async def dashboard_events(request: Request, services: Services) -> EventSourceResponse:
    settings = services.settings

    async def snapshots() -> AsyncIterator[ServerSentEvent]:
        ends_at = time.monotonic() + settings.api.dashboard_stream_s
        while True:
            try:
                view = await assemble_dashboard(
                    services.redis,
                    heartbeat_ttl_s=settings.worker.heartbeat_ttl_s,
                    now_s=time.time(),
                )
            except (RedisError, OSError):
                unavailable = Overloaded("The fleet's Redis does not answer.", retry_after_s=1)
                yield error_event(unavailable, request.url.path)
                return
            yield ServerSentEvent(event="snapshot", data=view.model_dump_json())
            if time.monotonic() + settings.api.dashboard_interval_s > ends_at:
                return
            await asyncio.sleep(settings.api.dashboard_interval_s)

    return EventSourceResponse(
        snapshots(), ping=settings.api.ping_interval_s, headers={"cache-control": "no-store"}
    )
