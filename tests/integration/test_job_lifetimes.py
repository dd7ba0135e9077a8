"""A job's record lives as long as the job may wait, run and be resumed, not the journal TTL.

The record (`redis_keys.job_record`) names the job's current attempt: without it no worker may
start the job and its relay ends it. Its lifetime follows the job's phase; the journal TTL
only says how long a finished job's chunks (and record) are kept for resumes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from shared.queue import arq_adapter
from shared.queue.job import AttemptId
from shared.queue.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings
from shared.wire.messages import MessagesRequest
from tests import loopback
from tests.conftest import StackFactory
from tests.fakes import fake_cli
from tests.integration.conftest import claim
from tests.processes import http_ok, wait_until

DAY_S = 86_400
REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
async def pool(redis_server: EmbeddedRedis) -> AsyncIterator[ArqRedis]:
    arq_pool = await create_pool(RedisSettings.from_dsn(redis_server.url))
    try:
        yield arq_pool
    finally:
        await arq_pool.aclose()


async def test_a_jobs_record_lives_through_its_longest_wait_and_its_run_then_as_long_as_its_chunks(
    redis: Redis, pool: ArqRedis
) -> None:
    settings = Settings(
        redis_url="redis://unused",
        journal_ttl_s=60,
        batch_max_wait_s=2 * DAY_S,
        job_timeout_s=900,
    )
    queue = JobQueue(pool, queue_name="test-queue", lifetimes=JobLifetimes.of(settings))
    job = await queue.submit(
        MessagesRequest.model_validate(REQUEST), request_id="req_1", lane="batch", lane_limit=10
    )
    record = redis_keys.job_record(job.job_id)
    assert await redis.ttl(record) > 2 * DAY_S + 900, "waiting: its wait and a run ahead"
    attempt_key = arq_adapter.job_key(str(AttemptId.of(job)))
    assert await redis.ttl(attempt_key) > 2 * DAY_S, "arq keeps the attempt as long"

    assert (await claim(queue, job, "worker-1")).outcome == "claimed"
    assert 900 < await redis.ttl(record) <= 900 + 60 + 60, "running: its run and its chunks"
    await queue.finish(job)
    assert 0 < await redis.ttl(record) <= 60, "done: kept as long as its chunks"


def test_a_job_that_waits_longer_than_the_journal_ttl_still_runs(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    env = {
        "CCFLEET_JOURNAL_TTL_S": "1",
        "CCFLEET_CLAUDE_BIN": str(fake_cli.write_executable(tmp_path)),
    }
    stack = make_stack(workers=0, wait_ready=False, **env)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    replies: dict[str, Any] = {}

    def send() -> None:
        replies["job"] = loopback.post(f"{stack.url}/v1/messages", json=REQUEST, timeout=60)

    sender = threading.Thread(target=send)
    sender.start()
    with SyncRedis.from_url(stack.redis.url) as redis:
        waiting = redis_keys.lane_waiting("interactive")
        wait_until(lambda: redis.zcard(waiting) == 1, 10, "a waiting job")
        (job_id,) = redis.zrange(waiting, 0, -1)
        time.sleep(2.5)  # what is under test: the job waits, with no worker, past the 1 s TTL
        assert redis.exists(redis_keys.job_record(job_id.decode()))
    stack.add_worker(**env)
    sender.join(60)
    assert replies["job"].status_code == 200, replies["job"].text
    assert replies["job"].json()["content"][0]["text"] == "Hello"
