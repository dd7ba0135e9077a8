"""The FastAPI front end: create_app(settings) and its lifespan."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator

import uvicorn
from fastapi import Depends, FastAPI
from sse_starlette.sse import AppStatus

from api.auth import authenticate, require_admin
from api.errors import install_error_handlers
from api.middleware import RequestContextMiddleware
from api.openapi import install_openapi
from api.routes import (
    batches,
    chat,
    count_tokens,
    dashboard,
    fleet,
    health,
    messages,
    metrics,
    models,
    usage,
)
from api.services import FrontEndServices, services_of
from api.telemetry.request_metrics import RequestMetricsMiddleware
from api.telemetry.request_recorder import RequestRecorderMiddleware
from shared.process.vital_tasks import VitalTasks
from shared.settings import Settings
from shared.telemetry.metrics import FleetMetrics


def create_app(settings: Settings, *, vital: VitalTasks | None = None) -> FastAPI:
    """`vital` holds the chunk hub's task; when it dies the server is asked to stop (by
    default with SIGTERM to this process; `front_end_server` stops its uvicorn instead)."""
    vital = vital or VitalTasks(on_death=lambda: signal.raise_signal(signal.SIGTERM))
    fleet_metrics = FleetMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = FrontEndServices.build(settings, fleet_metrics)
        services.install(app)
        relays = services.relays
        vital.start(relays.hub.run(), name="chunk-hub")
        try:
            yield
        finally:
            await relays.detached.close()
            await vital.stop()
            await relays.hub.close()
            await services.fleet.close()

    # On SIGTERM, uvicorn stops accepting connections and waits (drain_timeout_s) for the
    # requests in flight; sse-starlette would otherwise cut every stream at once.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]  # untyped in sse-starlette
    app = FastAPI(title="ccfleet", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestMetricsMiddleware, metrics=fleet_metrics)
    app.add_middleware(RequestRecorderMiddleware, redis=lambda: services_of(app).redis)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.api.max_body_bytes,
        path_max_body_bytes={"/v1/messages/batches": settings.batches.max_body_bytes},
    )
    install_error_handlers(app)
    # Access (api/auth.py) is decided here, for whole routers: a client key for the API,
    # an admin key for the fleet's own state; health probes and metrics stay open.
    client_routers = [
        count_tokens.router,
        messages.router,
        batches.router,
        chat.router,
        models.router,
    ]
    admin_routers = [fleet.router, usage.router]
    for router in client_routers:
        app.include_router(router, dependencies=[Depends(authenticate)])
    for router in admin_routers:
        app.include_router(router, dependencies=[Depends(require_admin)])
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.page_router)  # the page and its script hold no data
    app.include_router(dashboard.events_router, dependencies=[Depends(require_admin)])
    keyed = [*client_routers, *admin_routers]
    install_openapi(app, auth_enabled=settings.access.auth_enabled, keyed=keyed)
    return app


def front_end_server(
    settings: Settings, *, host: str, port: int
) -> tuple[uvicorn.Server, VitalTasks]:
    """uvicorn serving the front end (`ccfleet api`). If the chunk hub dies the server stops,
    draining as on SIGTERM, and the vital tasks' `failed` names it (the process exits 1)."""
    vital = VitalTasks(on_death=lambda: setattr(server, "should_exit", True))
    config = uvicorn.Config(
        create_app(settings, vital=vital),
        host=host,
        port=port,
        log_config=None,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.api.drain_timeout_s),
    )
    server = uvicorn.Server(config)
    return server, vital
