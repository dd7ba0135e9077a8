"""What a job keeps in Redis: its arq job exactly while it may run, its request only while a
retry may need it, a journal capped in bytes, and nothing at all when it cannot be queued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from shared.errors import CliFailed, Overloaded
from shared.fleet.lanes import lane_policies
from shared.queue import arq_adapter
from shared.queue.job import AttemptId, JobRequest
from shared.queue.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings
from shared.stream import journal
from shared.stream.chunk import Chunk
from shared.wire.messages import MessagesRequest
from tests.records import running_attempt
from worker.reply.chunk_publisher import ChunkPublisher

QUEUE = "test-queue"
WAITS = Settings(interactive_max_wait_s=120, batch_max_wait_s=600)
LIFETIMES = JobLifetimes(lanes=lane_policies(WAITS), run_s=120, kept_s=600)


@pytest.fixture
async def pool(redis_server: EmbeddedRedis) -> AsyncIterator[ArqRedis]:
    arq_pool = await create_pool(
        RedisSettings.from_dsn(redis_server.url),
        job_serializer=arq_adapter.serialize,
        job_deserializer=arq_adapter.deserialize,
    )
    try:
        yield arq_pool
    finally:
        await arq_pool.aclose()


def messages_request(text: str = "hi") -> MessagesRequest:
    return MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": text}]}
    )


async def submit(queue: JobQueue, text: str = "hi") -> JobRequest:
    return await queue.submit(
        messages_request(text), request_id="req_t", lane="interactive", lane_limit=10
    )


async def test_a_submitted_job_has_its_record_its_lane_entry_and_its_arq_job(
    pool: ArqRedis,
) -> None:
    queue = JobQueue(pool, queue_name=QUEUE, lifetimes=LIFETIMES)
    job = await submit(queue)
    attempt = str(AttemptId.of(job))
    assert await pool.zscore(redis_keys.lane_waiting("interactive"), job.job_id) is not None
    assert await pool.zscore(QUEUE, attempt) == job.priority_ms
    arq_job = await pool.get(arq_adapter.job_key(attempt))
    assert arq_job is not None
    assert JobRequest.model_validate(arq_adapter.job_payload(arq_job)) == job
    assert (await queue.record(job.job_id)) is not None


async def test_a_requeued_attempt_gets_its_arq_job_in_the_same_step(pool: ArqRedis) -> None:
    queue = JobQueue(pool, queue_name=QUEUE, lifetimes=LIFETIMES)
    first = await submit(queue)
    second = await queue.requeue(first, avoid_accounts=["alice"])
    assert second is not None
    assert await pool.exists(arq_adapter.job_key(str(AttemptId.of(second))))
    assert await pool.zscore(QUEUE, str(AttemptId.of(second))) == first.priority_ms


async def test_a_request_over_the_memory_budget_is_529_and_writes_nothing(
    pool: ArqRedis,
) -> None:
    used = int((await pool.info("memory"))["used_memory"])
    queue = JobQueue(
        pool, queue_name=QUEUE, lifetimes=LIFETIMES, memory_budget_bytes=used + 500_000
    )
    before = await pool.keys("*")
    with pytest.raises(Overloaded):
        await submit(queue, "x" * 300_000)  # kept twice: record and arq job
    assert await pool.keys("*") == before
    await submit(queue, "small")


async def test_redis_maxmemory_sets_the_budget_when_none_is_configured(pool: ArqRedis) -> None:
    used = int((await pool.info("memory"))["used_memory"])
    await pool.config_set("maxmemory", used + 1_000_000)
    queue = JobQueue(pool, queue_name=QUEUE, lifetimes=LIFETIMES)
    with pytest.raises(Overloaded):
        await submit(queue, "x" * 400_000)  # 0.8 MB kept: past 80 % of maxmemory


async def test_the_request_is_dropped_from_the_record_with_the_first_chunk(
    pool: ArqRedis, redis: Redis
) -> None:
    queue = JobQueue(pool, queue_name=QUEUE, lifetimes=LIFETIMES)
    job = await submit(queue)
    assert await redis.hexists(redis_keys.job_record(job.job_id), "payload")  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    publisher = ChunkPublisher(redis, job.job_id, attempt=1, ttl_s=600, max_chunks=100)
    await publisher.publish_event({"type": "message_start", "message": {}})
    assert not await redis.hexists(redis_keys.job_record(job.job_id), "payload")  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    state = await queue.state(job.job_id)
    assert state is not None and state.status == "waiting", "the small fields stay"


async def test_a_cancelled_job_keeps_no_request(pool: ArqRedis, redis: Redis) -> None:
    queue = JobQueue(pool, queue_name=QUEUE, lifetimes=LIFETIMES)
    job = await submit(queue)
    await queue.cancel(job.job_id)
    assert not await redis.hexists(redis_keys.job_record(job.job_id), "payload")  # type: ignore[misc]  # redis-py 5 types it sync-or-async


def delta(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


async def test_a_journal_is_capped_in_bytes_and_its_error_still_goes_out(redis: Redis) -> None:
    await running_attempt(redis, "job_big")
    publisher = ChunkPublisher(
        redis, "job_big", attempt=1, ttl_s=600, max_chunks=100_000, max_bytes=10_000
    )
    with pytest.raises(CliFailed) as caught:
        for _ in range(100):
            await publisher.publish_event(delta("x" * 1000))
    assert publisher.seq < 10
    await publisher.publish_error(caught.value)
    raw_chunks = await journal.read_after(redis, "job_big")
    chunks = [Chunk.from_json(raw) for raw in raw_chunks]
    assert sum(len(raw) for raw in raw_chunks) < 11_000
    assert chunks[-1].kind == "error"
    assert "journal limit" in chunks[-1].data["message"]
