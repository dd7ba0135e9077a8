"""The FastAPI front end: create_app(settings) and its lifespan."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Callable

import uvicorn
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sse_starlette.sse import AppStatus
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from api.auth import KeyGate, authenticate, require_admin
from api.browser_guard import BrowserGuard, allowed_hosts
from api.connection_limits import limited_http_protocol
from api.errors import install_error_handlers
from api.middleware import JsonBodyMiddleware, RequestContextMiddleware
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
    responses,
    usage,
)
from api.services import FrontEndServices, services_of
from api.telemetry.request_metrics import RequestMetricsMiddleware
from api.telemetry.request_recorder import RequestRecorderMiddleware
from shared.process.collector import steady_collections
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
        services.request_stats.start()
        try:
            with steady_collections():  # start-up is done: its objects are frozen
                yield
        finally:
            await relays.detached.close()
            await vital.stop()
            await services.request_stats.stop()  # writes the requests that ended last
            await relays.hub.close()
            await services.fleet.close()

    # On SIGTERM, uvicorn stops accepting connections and waits (drain_timeout_s) for the
    # requests in flight; sse-starlette would otherwise cut every stream at once.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]  # untyped in sse-starlette
    app = FastAPI(title="ccfleet", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Access (api/auth.py) is decided here, for whole routers: a client key for the API,
    # an admin key for the fleet's own state and its metrics (they name keys and accounts);
    # health probes, the dashboard's page and the OpenAPI document (FastAPI's own route) stay
    # open.
    open_routes = [*app.routes, *health.router.routes, *dashboard.page_router.routes]
    client_routers = [
        count_tokens.router,
        messages.router,
        batches.router,
        chat.router,
        responses.router,
        models.router,
    ]
    admin_routers = [fleet.router, usage.router, metrics.router]
    for router in client_routers:
        app.include_router(router, dependencies=[Depends(authenticate)])
    for router in admin_routers:
        app.include_router(router, dependencies=[Depends(require_admin)])
    app.include_router(health.router)
    app.include_router(dashboard.page_router)  # the page and its script hold no data
    app.include_router(dashboard.events_router, dependencies=[Depends(require_admin)])
    keyed = [*client_routers, *admin_routers]
    install_openapi(
        app,
        auth_enabled=settings.access.auth_enabled,
        keyed=keyed,
        max_tokens_limit=settings.api.max_tokens_limit,
    )
    # Middleware, the last added outermost: a request passes the checks of the edge in this
    # order, each before any work the next would do: its id; its Host and Origin
    # (api/browser_guard.py), CORS for the origins allowed; its key, from the headers
    # (api/auth.py); only then its body: JSON, read under the size limit.
    app.add_middleware(RequestMetricsMiddleware, metrics=fleet_metrics)
    app.add_middleware(RequestRecorderMiddleware, writer=lambda: services_of(app).request_stats)
    app.add_middleware(
        JsonBodyMiddleware,
        takes_body=_taken_by(app.routes),
        max_body_bytes=settings.api.max_body_bytes,
        path_max_body_bytes={"/v1/messages/batches": settings.batches.max_body_bytes},
    )
    app.add_middleware(KeyGate, is_open=_any_of(open_routes))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["*"],
        expose_headers=["request-id", "retry-after", "x-should-retry"],
    )
    app.add_middleware(
        BrowserGuard,
        allowed_hosts=allowed_hosts(settings),
        cors_origins=settings.api.cors_origins,
    )
    app.add_middleware(RequestContextMiddleware)
    return app


def _any_of(routes: list[BaseRoute]) -> Callable[[Scope], bool]:
    """Whether a request is for one of these routes (any method: a wrong one is a 405)."""
    open_routes = tuple(routes)

    def is_open(scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in open_routes)

    return is_open


def _taken_by(routes: list[BaseRoute]) -> Callable[[Scope], bool]:
    """Whether a route takes the request as sent, method and all (else it is a 404 or 405)."""

    def taken(scope: Scope) -> bool:
        return any(route.matches(scope)[0] is Match.FULL for route in routes)

    return taken


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
        # uvicorn's httptools protocol with a header deadline and a connection cap.
        http=limited_http_protocol(
            header_timeout_s=settings.api.header_timeout_s,
            max_connections=settings.api.max_connections,
        ),
        timeout_graceful_shutdown=int(settings.api.drain_timeout_s),
    )
    server = uvicorn.Server(config)
    return server, vital
