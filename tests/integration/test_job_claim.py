"""Claiming an attempt: one script does arq's in-progress mark, the account's cooldown check,
the job record and the journal read (`JobQueue.claim`), and a worker whose arq ends an attempt
without running it gives the claim back (`JobQueue.release`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from shared.fleet.registry import set_account_cooling
from shared.queue import arq_adapter
from shared.queue.job import AttemptId, JobRequest
from shared.queue.job_queue import JobQueue
from shared.settings import Settings
from shared.wire.messages import MessagesRequest
from tests.integration.conftest import FakeWorker, claim, run_claimed
from tests.waiting import async_wait_until
from worker.fleet_worker import FleetWorker
from worker.main import build_worker
from worker.reply.chunk_publisher import ChunkPublisher

REQUEST = MessagesRequest.model_validate(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
)


async def submitted(queue: JobQueue, request_id: str = "req_1") -> JobRequest:
    return await queue.submit(REQUEST, request_id=request_id, lane="interactive", lane_limit=10)


def in_progress(job: JobRequest) -> str:
    return arq_adapter.in_progress_key(str(AttemptId.of(job)))


async def test_a_claim_marks_the_attempt_in_progress_and_the_record_running_once(
    redis: Redis, job_queue: JobQueue
) -> None:
    job = await submitted(job_queue)
    claimed = await claim(job_queue, job, "worker-1")
    assert claimed.outcome == "claimed" and claimed.runs
    assert claimed.score == await redis.zscore("test-queue", str(AttemptId.of(job)))
    assert claimed.last_chunk is None, "nothing journaled yet"
    assert await redis.exists(in_progress(job))
    state = await job_queue.state(job.job_id)
    assert state is not None and (state.status, state.worker) == ("running", "worker-1")
    assert await redis.zcard(redis_keys.lane_waiting("interactive")) == 0
    assert (await claim(job_queue, job, "worker-2")).outcome == "taken"


async def test_a_cooling_account_claims_nothing_and_learns_until_when(
    redis: Redis, job_queue: JobQueue
) -> None:
    job = await submitted(job_queue)
    until = time.time() + 600
    await set_account_cooling(redis, "a", until_s=until, reason="limit")
    refused = await claim(job_queue, job, "worker-1", account="a")
    assert refused.outcome == "cooling" and not refused.runs
    assert abs(refused.cooling_until - until) < 0.01
    assert not await redis.exists(in_progress(job))
    state = await job_queue.state(job.job_id)
    assert state is not None and state.status == "waiting"
    assert (await claim(job_queue, job, "worker-2", account="b")).outcome == "claimed"


FIRST_ONLY: dict[str, Any] = {
    "worker_id": "w",
    "account": "a",
    "in_progress_ms": 60_000,
    "first_only": True,
}


async def test_an_announced_attempt_is_claimed_first_only_when_no_older_job_waits(
    job_queue: JobQueue,
) -> None:
    older = await submitted(job_queue, "req_older")
    newer = await submitted(job_queue, "req_newer")
    attempt = str(AttemptId.of(newer))
    assert (await job_queue.claim(attempt, **FIRST_ONLY)).outcome == "behind"
    # Running, the older one is still in arq's queue, but no longer waits ahead of it.
    assert (await claim(job_queue, older, "w")).outcome == "claimed"
    assert (await job_queue.claim(attempt, **FIRST_ONLY)).outcome == "claimed"


async def test_an_announced_batch_attempt_waits_behind_any_waiting_interactive_job(
    job_queue: JobQueue,
) -> None:
    batch = await job_queue.submit(REQUEST, request_id="req_b", lane="batch", lane_limit=10)
    interactive = await submitted(job_queue, "req_i")  # newer, but its lane goes first
    attempt = str(AttemptId.of(batch))
    assert (await job_queue.claim(attempt, **FIRST_ONLY)).outcome == "behind"
    assert (await claim(job_queue, interactive, "w")).outcome == "claimed"
    assert (await job_queue.claim(attempt, **FIRST_ONLY)).outcome == "claimed"


async def test_a_stale_attempt_runs_to_its_end_but_leaves_the_record_to_the_current_one(
    job_queue: JobQueue,
) -> None:
    first = await submitted(job_queue)
    second = await job_queue.requeue(first, avoid_accounts=[])
    assert second is not None
    stale = await claim(job_queue, first, "worker-1")
    assert stale.outcome == "stale" and stale.runs, "arq runs it, so arq removes it"
    state = await job_queue.state(first.job_id)
    assert state is not None and (state.status, state.worker) == ("waiting", "")
    assert (await claim(job_queue, second, "worker-2")).outcome == "claimed"


async def test_a_claim_returns_the_newest_chunk_an_earlier_run_journaled(
    redis: Redis, job_queue: JobQueue
) -> None:
    job = await submitted(job_queue)
    publisher = ChunkPublisher(redis, job.job_id, attempt=1, ttl_s=600, max_chunks=100)
    await publisher.publish_event({"type": "ping"})
    await publisher.publish_event({"type": "message_stop"})
    claimed = await claim(job_queue, job, "worker-1")
    assert claimed.last_chunk is not None
    assert (claimed.last_chunk.seq, claimed.last_chunk.event) == (2, "message_stop")


async def test_a_released_claim_leaves_the_job_waiting_in_its_lane_again(
    redis: Redis, job_queue: JobQueue
) -> None:
    job = await submitted(job_queue)
    await claim(job_queue, job, "worker-1")
    await job_queue.release(AttemptId.of(job), "worker-2")  # not its worker: refused
    state = await job_queue.state(job.job_id)
    assert state is not None and state.status == "running"
    await job_queue.release(AttemptId.of(job), "worker-1")
    state = await job_queue.state(job.job_id)
    assert state is not None and (state.status, state.worker) == ("waiting", "")
    assert await redis.zscore(redis_keys.lane_waiting("interactive"), job.job_id) == int(
        job.enqueued_at_ms
    )


@pytest.fixture
async def worker(redis_server: EmbeddedRedis) -> AsyncIterator[FleetWorker]:
    """A worker as `ccfleet worker` builds it, not running: a test calls its parts."""
    settings = Settings(redis_url=redis_server.url, queue_name="test-queue")
    built = build_worker(settings, {"PATH": "/usr/bin:/bin"})
    try:
        yield built
    finally:
        await built.pool.aclose()


async def test_a_worker_gives_back_the_claim_of_an_attempt_arq_ends_without_running_it(
    redis: Redis, worker: FleetWorker
) -> None:
    job = await submitted(worker.queue)
    attempt_id = str(AttemptId.of(job))
    await redis.delete(arq_adapter.job_key(attempt_id))  # its arq job expired meanwhile
    await worker.start_queued([attempt_id.encode()])
    assert worker.running() == [attempt_id]
    # arq: "job expired", ended without the job function
    await async_wait_until(lambda: not worker.running(), 10, "arq to end the attempt")
    state = await worker.queue.state(job.job_id)
    assert state is not None and (state.status, state.worker) == ("waiting", "")


async def test_a_finished_job_keeps_when_it_was_queued_and_handed_to_its_cli(
    redis: Redis, job_queue: JobQueue, fake_worker: FakeWorker
) -> None:
    job = await submitted(job_queue)
    await run_claimed(redis, fake_worker("answer"), job)
    record = await redis.hgetall(redis_keys.job_record(job.job_id))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    enqueued, handed_off = float(record[b"enqueued_at_ms"]), float(record[b"handed_off_at_ms"])
    assert record[b"status"] == b"done"
    assert 0 < handed_off - enqueued < 30_000
    assert enqueued != int(enqueued) or handed_off != int(handed_off), "kept below the ms"


async def test_a_worker_passes_over_jobs_running_elsewhere_with_one_read(
    redis: Redis, worker: FleetWorker
) -> None:
    # arq keeps running jobs in its queue: a claim for each would cost a round trip each,
    # at every look at the queue, on every worker.
    jobs = []
    for n in range(20):
        jobs.append(job := await submitted(worker.queue, f"req_{n}"))
        assert (await claim(worker.queue, job, "another-worker")).outcome == "claimed"
    await redis.config_resetstat()
    await worker.start_queued([str(AttemptId.of(job)).encode() for job in jobs])
    stats = await redis.info("commandstats")
    assert "cmdstat_evalsha" not in stats and "cmdstat_eval" not in stats, stats
    assert stats["cmdstat_mget"]["calls"] == 1
    assert worker.running() == []


async def test_a_cancel_announced_with_an_attempt_makes_the_worker_take_the_full_look(
    worker: FleetWorker,
) -> None:
    # The full look (arq's poll iteration) is what aborts cancelled jobs: a cancel must not
    # wait for the next one behind an attempt started the short way.
    job = await submitted(worker.queue)
    attempt_id = str(AttemptId.of(job)).encode()
    worker.wakeup.announce(attempt_id)
    worker.wakeup.announce(b"abort")
    assert not await worker._start_announced()
    assert worker.running() == [], "left to the full look"
    worker.wakeup.announce(attempt_id)
    assert await worker._start_announced()
    assert worker.running() == [attempt_id.decode()]
    await async_wait_until(lambda: not worker.running(), 10, "the attempt to end")
