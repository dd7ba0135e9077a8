"""The FastAPI front end: create_app(settings) and its lifespan."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator

import uvicorn
from fastapi import Depends, FastAPI
from sse_starlette.sse import AppStatus

from api.admission import FrontEnd
from api.auth import authenticate, require_admin
from api.errors import install_error_handlers
from api.middleware import RequestContextMiddleware
from api.relay.chunk_hub import ChunkHub
from api.relay.detached import DetachedJobs
from api.relay.job_watch import JobWatch
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
from api.telemetry.request_metrics import RequestMetricsMiddleware
from api.telemetry.request_recorder import RequestRecorderMiddleware
from shared.process.vital_tasks import VitalTasks
from shared.services import FleetServices
from shared.settings import Settings
from shared.telemetry.metrics import FleetMetrics


def create_app(settings: Settings, *, vital: VitalTasks | None = None) -> FastAPI:
    """`vital` holds the chunk hub's task; when it dies the server is asked to stop (by
    default with SIGTERM to this process; `front_end_server` stops its uvicorn instead)."""
    vital = vital or VitalTasks(on_death=lambda: signal.raise_signal(signal.SIGTERM))
    fleet_metrics = FleetMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = FleetServices.build(settings)
        redis, queue = services.redis, services.queue
        hub = ChunkHub(redis)
        detached = DetachedJobs(redis, queue, redis_outage_s=settings.redis_outage_s)
        app.state.front_end = FrontEnd(
            settings=settings,
            redis=redis,
            hub=hub,
            queue=queue,
            watch=JobWatch(redis, queue, settings),
            detached=detached,
            key_store=services.client_keys(),
            quotas=services.quotas,
            metrics=fleet_metrics,
        )
        app.state.batch_desk = batches.BatchDesk(
            settings=settings, store=services.batch_store, dispatch=services.batch_dispatch
        )
        vital.start(hub.run(), name="chunk-hub")
        try:
            yield
        finally:
            await detached.close()
            await vital.stop()
            await hub.close()
            await services.close()

    # On SIGTERM, uvicorn stops accepting connections and waits (drain_timeout_s) for the
    # requests in flight; sse-starlette would otherwise cut every stream at once.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]  # untyped in sse-starlette
    app = FastAPI(title="ccfleet", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.vital = vital
    app.add_middleware(RequestMetricsMiddleware, metrics=fleet_metrics)
    app.add_middleware(RequestRecorderMiddleware)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        path_max_body_bytes={"/v1/messages/batches": settings.batch_max_body_bytes},
    )
    install_error_handlers(app)
    # Access (api/auth.py) is decided here, for whole routers: a client key for the API,
    # an admin key for the fleet's own state; health probes and metrics stay open.
    client = [Depends(authenticate)]
    admin = [Depends(require_admin)]
    app.include_router(count_tokens.router, dependencies=client)
    app.include_router(messages.router, dependencies=client)
    app.include_router(batches.router, dependencies=client)
    app.include_router(chat.router, dependencies=client)
    app.include_router(models.router, dependencies=client)
    app.include_router(fleet.router, dependencies=admin)
    app.include_router(usage.router, dependencies=admin)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.page_router)  # the page and its script hold no data
    app.include_router(dashboard.events_router, dependencies=admin)
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
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
    )
    server = uvicorn.Server(config)
    return server, vital
