"""Integration fixtures: an async Redis client on the per-test server, a job queue on it, a
running ChunkHub, and worker contexts running the fake CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from api.relay.chunk_hub import ChunkHub
from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker.connection import arq_redis
from shared.queue.job import AttemptId, JobRequest
from shared.queue.job_queue import Claim, JobLifetimes, JobQueue
from shared.settings import Settings
from tests.fakes import fake_cli
from worker.cli.config import CliConfig
from worker.context import JobContext, WorkerContext, WorkerState
from worker.job_function import run_messages


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_clients(redis_server: EmbeddedRedis) -> AsyncIterator[Callable[[], Redis]]:
    """`redis_clients()`: one more client of the server, as another front end holds one."""
    made: list[Redis] = []

    def connect() -> Redis:
        client: Redis = Redis.from_url(redis_server.url)
        made.append(client)
        return client

    yield connect
    for client in made:
        await client.aclose()


@pytest.fixture
async def job_queue(redis_server: EmbeddedRedis) -> AsyncIterator[JobQueue]:
    """The job queue as a front end builds it (its own arq client)."""
    settings = Settings(redis_url=redis_server.url, queue_name="test-queue")
    client = arq_redis(settings)
    try:
        yield JobQueue(client, queue_name=settings.queue.name, lifetimes=JobLifetimes.of(settings))
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


FakeWorker = Callable[..., WorkerContext]


async def claim(queue: JobQueue, job: JobRequest, worker_id: str, account: str = "a") -> Claim:
    """Claim `job`'s attempt as a worker's poll loop does (worker/fleet_worker.py)."""
    return await queue.claim(
        str(AttemptId.of(job)), worker_id=worker_id, account=account, in_progress_ms=60_000
    )


async def run_claimed(redis: Redis, worker: WorkerContext, job: JobRequest) -> None:
    """Run `job`'s attempt as a worker does: claimed by its poll loop, then the job function
    called with the claim in its context (worker/fleet_worker.py)."""
    claimed = await claim(worker.queue, job, worker.state.worker_id, worker.state.account)
    assert claimed.runs, claimed
    run = JobContext(worker=worker, redis=redis, claim=claimed)
    await run_messages(run, job.model_dump(mode="json"))


@pytest.fixture
def fake_worker(job_queue: JobQueue, tmp_path: Path) -> FakeWorker:
    """`fake_worker(mode, **env)`: what a worker's jobs share (`JobContext.worker`), running
    tests/fakes/fake_cli.py in FAKE_CLI_MODE `mode` as its `claude`."""
    wrapper = fake_cli.install(tmp_path / "claude")
    (tmp_path / "work").mkdir(exist_ok=True)

    def build(mode: str, *, timeout_s: float = 40.0, **env: str) -> WorkerContext:
        cli = CliConfig(
            claude_bin=str(wrapper),
            base_env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "FAKE_CLI_MODE": mode,
                **env,
            },
            work_root=str(tmp_path / "work"),
            timeout_s=timeout_s,
            kill_grace_s=0.3,
        )
        state = WorkerState(worker_id="w-test", host="test", account="a", slots=1, cli_version="x")
        settings = Settings(redis_url="redis://unused", journal_ttl_s=600)
        return WorkerContext(settings=settings, cli=cli, state=state, queue=job_queue)

    return build
