"""What the front end's routes use, built once by the lifespan (api/app.py).

The fleet's shared objects (shared/services.py), the client keys, the relay machinery and
this front end's metrics and
request figures. Routes reach them through one typed dependency, `Services`;
nothing else reads app.state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, FastAPI, Request

from api.relay.relays import JobRelays
from api.telemetry.request_stats_writer import RequestStatsWriter
from shared.access.client_keys import KeyStore
from shared.services import FleetServices
from shared.settings import Settings
from shared.telemetry.metrics import FleetMetrics


@dataclass(frozen=True)
class FrontEndServices:
    fleet: FleetServices
    relays: JobRelays
    key_store: KeyStore | None
    """None: client keys are off (CCFLEET_AUTH=off)."""
    metrics: FleetMetrics
    request_stats: RequestStatsWriter
    """The dashboard's request figures, written by a task the lifespan owns."""

    @classmethod
    def build(cls, settings: Settings, metrics: FleetMetrics) -> FrontEndServices:
        fleet = FleetServices.build(settings)
        return cls(
            fleet=fleet,
            relays=JobRelays.build(fleet, metrics),
            key_store=fleet.client_keys(),
            metrics=metrics,
            request_stats=RequestStatsWriter(fleet.redis),
        )

    @property
    def settings(self) -> Settings:
        return self.fleet.settings

    @property
    def redis(self) -> ArqRedis:
        return self.fleet.redis

    def install(self, app: FastAPI) -> None:
        """Make these the app's services, for `services_of` (the lifespan, at start)."""
        app.state.services = self


def services_of(app: FastAPI) -> FrontEndServices:
    """The services the lifespan installed; only while the app runs."""
    services = app.state.services
    assert isinstance(services, FrontEndServices), "installed by api/app.py's lifespan"
    return services


async def front_end_services(request: Request) -> FrontEndServices:
    """FastAPI dependency: the front end's services (use `Services` in a signature). A
    coroutine function though it awaits nothing: FastAPI runs a plain function in its thread
    pool, a hand-off each request."""
    return services_of(request.app)


Services = Annotated[FrontEndServices, Depends(front_end_services)]
