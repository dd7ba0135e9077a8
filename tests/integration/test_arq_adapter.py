"""What the arq adapter (shared/queue/arq_adapter.py) relies on in arq 0.28, pinned on a real
Redis: arq reads the jobs the queue's scripts write as its own, passes over an attempt a
claim marked in progress, aborts through its abort set, and runs a job through the hooks
`ArqWorker` gives its subclass. An arq upgrade that moves one of them fails here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.jobs import Job, JobStatus
from redis.asyncio import Redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker.connection import arq_redis
from shared.queue import arq_adapter
from shared.queue.arq_adapter import ArqWorker
from shared.queue.job import RUN_MESSAGES_JOB, AttemptId, JobRequest
from shared.queue.job_queue import JobQueue
from shared.settings import Settings
from shared.wire.messages import MessagesRequest
from tests.waiting import async_wait_until

REQUEST = MessagesRequest.model_validate(
    {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
)


class Recording(ArqWorker):
    """Runs each job until `hold` is set, noting every hook arq reached."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(job_name=RUN_MESSAGES_JOB, job_max_tries=1, redis_outage_s=0, **kwargs)
        self.hold = asyncio.Event()
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.cancelled: list[str] = []
        self.ended: list[str] = []
        self.freed = 0

    async def run_attempt(self, job_id: str, payload: dict[str, Any]) -> None:
        self.ran.append((job_id, payload))
        try:
            await self.hold.wait()
        except asyncio.CancelledError:
            self.cancelled.append(job_id)
            raise

    async def after_run(self, job_id: str) -> None:
        self.ended.append(job_id)

    def slot_freed(self) -> None:
        self.freed += 1


@pytest.fixture
async def worker(redis_server: EmbeddedRedis) -> AsyncIterator[Recording]:
    settings = Settings(redis_url=redis_server.url, queue_name="test-queue")
    built = Recording(
        redis_pool=arq_redis(settings),
        queue_name=settings.queue.name,
        max_jobs=2,
        keep_result=0,
        poll_delay=0,
        allow_abort_jobs=True,
        handle_signals=False,
    )
    try:
        yield built
    finally:
        built.hold.set()
        await asyncio.gather(*built.tasks.values(), return_exceptions=True)
        await built.pool.aclose()


async def submitted(queue: JobQueue, request_id: str = "req_1") -> JobRequest:
    return await queue.submit(REQUEST, request_id=request_id, lane="interactive", lane_limit=10)


async def test_arq_reads_a_job_the_queue_wrote_as_one_of_its_own(
    redis: Redis, job_queue: JobQueue
) -> None:
    job = await submitted(job_queue)
    attempt_id = str(AttemptId.of(job))
    arq_job = Job(
        attempt_id, redis, _queue_name="test-queue", _deserializer=arq_adapter.deserialize
    )
    assert await arq_job.status() == JobStatus.queued
    info = await arq_job.info()
    assert info is not None
    assert (info.function, info.score) == (RUN_MESSAGES_JOB, job.priority_ms)
    assert JobRequest.model_validate(info.args[0]) == job
    assert await redis.pttl(arq_adapter.job_key(attempt_id)) > 0, "expires if never started"


async def test_arq_runs_a_due_job_through_the_hooks_and_drops_it_when_it_ends(
    redis: Redis, job_queue: JobQueue, worker: Recording
) -> None:
    job = await submitted(job_queue)
    attempt_id = str(AttemptId.of(job))
    await worker.read_queue()  # arq's own look at the queue, and its own start_jobs
    assert worker.running() == [attempt_id]
    await async_wait_until(lambda: worker.ran, 10, "the job function")
    ran_id, payload = worker.ran[0]
    assert ran_id == attempt_id, "arq's ctx['job_id'] is the attempt id"
    assert JobRequest.model_validate(payload) == job
    ttl_ms = await redis.pttl(arq_adapter.in_progress_key(attempt_id))
    assert worker.in_progress_ms - 5_000 < ttl_ms <= worker.in_progress_ms
    worker.hold.set()
    await async_wait_until(lambda: not worker.running(), 10, "the job to end")
    assert (worker.ended, worker.freed) == ([attempt_id], 1)
    assert not await redis.exists(arq_adapter.job_key(attempt_id)), "no result kept"
    assert await redis.zscore("test-queue", attempt_id) is None


async def test_arq_passes_over_an_attempt_a_claim_marked_in_progress(
    job_queue: JobQueue, worker: Recording
) -> None:
    job = await submitted(job_queue)
    claim = await job_queue.claim(
        str(AttemptId.of(job)), worker_id="elsewhere", account="a", in_progress_ms=60_000
    )
    assert claim.outcome == "claimed"
    await worker.read_queue()
    assert worker.running() == [] and worker.ran == []
    assert await worker.not_started([str(AttemptId.of(job)).encode()]) == []


async def test_an_abort_cancels_a_running_job_and_ends_a_queued_one_without_running_it(
    job_queue: JobQueue, worker: Recording
) -> None:
    running = await submitted(job_queue, "req_running")
    await worker.read_queue()
    await async_wait_until(lambda: worker.ran, 10, "the first job function")
    queued = await submitted(job_queue, "req_queued")
    await job_queue.cancel(running.job_id)  # arq_adapter.abort, with the record's change
    await job_queue.cancel(queued.job_id)
    await worker.read_queue()  # starts the queued one (aborted before start), aborts the other
    await async_wait_until(lambda: not worker.running(), 10, "both jobs to end")
    assert worker.cancelled == [str(AttemptId.of(running))]
    assert [job_id for job_id, _ in worker.ran] == [str(AttemptId.of(running))]
    assert sorted(worker.ended) == sorted(str(AttemptId.of(j)) for j in (running, queued))


async def test_a_worker_run_hands_its_startup_context_to_the_job_hooks(
    redis_server: EmbeddedRedis, job_queue: JobQueue
) -> None:
    started: list[dict[str, Any]] = []

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["worker"] = "the worker's context"
        started.append(ctx)

    class Reading(ArqWorker):
        seen = ""

        async def run_attempt(self, job_id: str, payload: dict[str, Any]) -> None:
            self.seen = self.startup_value("worker", str)

    settings = Settings(redis_url=redis_server.url, queue_name="test-queue")
    worker = Reading(
        job_name=RUN_MESSAGES_JOB,
        job_max_tries=1,
        redis_outage_s=0,
        redis_pool=arq_redis(settings),
        queue_name=settings.queue.name,
        on_startup=on_startup,
        burst=True,
        poll_delay=0,
        keep_result=0,
        handle_signals=False,
    )
    await submitted(job_queue)
    try:
        async with asyncio.timeout(20):
            await worker.async_run()  # burst: until the queue is empty
        assert started and started[0]["redis"] is worker.pool
        assert worker.seen == "the worker's context"
        with pytest.raises(TypeError, match="not int"):
            worker.startup_value("worker", int)
    finally:
        await worker.pool.aclose()
