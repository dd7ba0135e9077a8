"""The front end's FastAPI dependencies run on the event loop: FastAPI runs a plain `def`
dependency in its thread pool, a thread hand-off for every request that uses it (5 % of the
front end's CPU at 1,000 streams, bench/many_streams.py)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.app import create_app
from shared.settings import Settings


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The app's routes, those of the routers it includes too (FastAPI keeps each included
    router whole, as `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from dependencies(dependency)


def test_every_dependency_of_every_route_is_a_coroutine_function() -> None:
    app = create_app(Settings())
    routes = list(api_routes(app.routes))
    assert len(routes) > 20
    in_threads = {
        f"{dependency.call.__module__}.{dependency.call.__qualname__}"
        for route in routes
        for dependency in dependencies(route.dependant)
        if dependency.call is not None and not inspect.iscoroutinefunction(dependency.call)
    }
    assert not in_threads, f"run in the thread pool for each request: {sorted(in_threads)}"
