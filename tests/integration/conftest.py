"""Integration fixtures: an async Redis client on the per-test server, a job queue on it, and a
running ChunkHub."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from api.chunk_hub import ChunkHub
from ccfleet.embedded_redis import EmbeddedRedis
from shared.job_queue import JobQueue
from shared.redis_connection import arq_redis
from shared.settings import Settings


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def job_queue(redis_server: EmbeddedRedis) -> AsyncIterator[JobQueue]:
    """The job queue as a front end builds it (its own arq client)."""
    settings = Settings(redis_url=redis_server.url, queue_name="test-queue")
    client = arq_redis(settings)
    try:
        yield JobQueue(client, queue_name=settings.queue_name, record_ttl_s=600)
    finally:
        await client.aclose()


@pytest.fixture
async def hub(redis: Redis) -> AsyncIterator[ChunkHub]:
    """A ChunkHub with its `run()` as a task owned here, cancelled after the test."""
    chunk_hub = ChunkHub(redis)
    task = asyncio.create_task(chunk_hub.run(), name="test-chunk-hub")
    try:
        yield chunk_hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await chunk_hub.close()
