"""The FastAPI front end: create_app(settings) and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from arq.connections import create_pool
from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from api.admission import FrontEnd
from api.chunk_hub import ChunkHub
from api.detached import DetachedJobs
from api.errors import install_error_handlers
from api.job_watch import JobWatch
from api.middleware import RequestContextMiddleware
from api.routes import chat, count_tokens, fleet, health, messages, models
from shared import arq_codec
from shared.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = await create_pool(
            arq_codec.redis_settings(settings.effective_redis_url()),
            job_serializer=arq_codec.serialize,
            job_deserializer=arq_codec.deserialize,
            default_queue_name=settings.queue_name,
        )
        hub = ChunkHub(redis)
        queue = JobQueue(redis, queue_name=settings.queue_name, lifetimes=JobLifetimes.of(settings))
        detached = DetachedJobs(redis, queue, redis_outage_s=settings.redis_outage_s)
        app.state.front_end = FrontEnd(
            settings=settings,
            redis=redis,
            hub=hub,
            queue=queue,
            watch=JobWatch(redis, queue, settings),
            detached=detached,
        )
        hub_task = asyncio.create_task(hub.run(), name="chunk-hub")
        try:
            yield
        finally:
            await detached.close()
            hub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub_task
            await hub.close()
            await redis.aclose()

    # On SIGTERM, uvicorn stops accepting connections and waits (drain_timeout_s) for the
    # requests in flight; sse-starlette would otherwise cut every stream at once.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]  # untyped in sse-starlette
    app = FastAPI(title="ccfleet", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(count_tokens.router)
    app.include_router(messages.router)
    app.include_router(chat.router)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(fleet.router)
    return app
