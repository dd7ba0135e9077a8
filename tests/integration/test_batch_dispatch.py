"""The batch dispatcher against a real Redis, without workers: lost requests run again as new
jobs, a fixed number of times, then fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis import Redis as SyncRedis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.batches.dispatch import BatchDispatch
from shared.batches.store import BatchStore, NewBatch, StoredRequest
from shared.broker import redis_keys
from shared.queue.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings
from tests.waiting import async_wait_until

PARAMS = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def pool(redis_server: EmbeddedRedis) -> AsyncIterator[ArqRedis]:
    arq_pool = await create_pool(RedisSettings.from_dsn(redis_server.url))
    try:
        yield arq_pool
    finally:
        await arq_pool.aclose()


async def test_a_request_whose_jobs_keep_getting_lost_runs_again_then_ends_errored(
    pool: ArqRedis,
) -> None:
    store = BatchStore(pool, retention_s=60)
    queue = JobQueue(pool, queue_name="test-queue", lifetimes=JobLifetimes.of(Settings()))
    dispatch = BatchDispatch(pool, store, queue, batch_max_waiting=10, max_runs=2, lost_after_ms=0)
    body = orjson.dumps({"custom_id": "only", "params": PARAMS})
    await store.create(
        NewBatch(id="msgbatch_t", owner="", created_at_ms=1, expires_at_ms=2**42),
        [StoredRequest(0, body)],
    )
    taken = await store.take_next("job_never_queued")  # its feeder died before queuing it
    assert taken is not None

    await dispatch.check("msgbatch_t")

    [entry] = await store.inflight("msgbatch_t")
    assert entry.job_id != "job_never_queued"
    assert entry.runs == 2
    assert (await queue.state(entry.job_id)) is not None  # queued as a new job
    await pool.delete(redis_keys.job_record(entry.job_id))  # lost again

    await dispatch.check("msgbatch_t")

    state = await store.get("msgbatch_t")
    assert state is not None
    assert state.status == "ended"
    assert state.counts["errored"] == 1
    [line] = [orjson.loads(raw) async for raw in store.results(state)]
    assert line["custom_id"] == "only"
    assert line["result"]["type"] == "errored"
    assert "lost 2 times" in line["result"]["error"]["error"]["message"]


async def test_a_request_the_full_batch_lane_cannot_take_waits_without_using_up_its_runs(
    pool: ArqRedis,
) -> None:
    store = BatchStore(pool, retention_s=60)
    queue = JobQueue(pool, queue_name="test-queue", lifetimes=JobLifetimes.of(Settings()))
    full_lane = BatchDispatch(pool, store, queue, batch_max_waiting=0, max_runs=2, lost_after_ms=0)
    body = orjson.dumps({"custom_id": "only", "params": PARAMS})
    await store.create(
        NewBatch(id="msgbatch_t", owner="", created_at_ms=1, expires_at_ms=2**42),
        [StoredRequest(0, body)],
    )

    assert await full_lane.feed(waiting_target=1) == 0  # claimed, but the lane is full
    for _ in range(4):
        await full_lane.check("msgbatch_t")

    [entry] = await store.inflight("msgbatch_t")
    assert entry.runs == 1
    state = await store.get("msgbatch_t")
    assert state is not None
    assert (state.status, state.processing) == ("in_progress", 1)
    roomy = BatchDispatch(pool, store, queue, batch_max_waiting=10, max_runs=2, lost_after_ms=0)
    await roomy.check("msgbatch_t")
    [entry] = await store.inflight("msgbatch_t")
    assert (await queue.state(entry.job_id)) is not None  # queued at last


async def test_a_batch_request_runs_on_the_key_that_created_the_batch(pool: ArqRedis) -> None:
    store = BatchStore(pool, retention_s=60)
    queue = JobQueue(pool, queue_name="test-queue", lifetimes=JobLifetimes.of(Settings()))
    dispatch = BatchDispatch(pool, store, queue, batch_max_waiting=10, max_runs=2)
    body = orjson.dumps({"custom_id": "only", "params": PARAMS})
    await store.create(
        NewBatch(id="msgbatch_t", owner="alice", created_at_ms=1, expires_at_ms=2**42),
        [StoredRequest(0, body)],
    )

    assert await dispatch.feed(waiting_target=1) == 1

    [entry] = await store.inflight("msgbatch_t")
    record = await queue.record(entry.job_id)
    assert record is not None
    assert record.job.client_key == "alice"  # usage and spend go to the batch's key
    assert record.job.lane == "batch"
    assert record.job.batch is not None and record.job.batch.custom_id == "only"


async def test_a_request_given_back_is_taken_again_first_and_those_in_flight_are_skipped(
    pool: ArqRedis,
) -> None:
    store = BatchStore(pool, retention_s=60)
    bodies = [orjson.dumps({"custom_id": f"r{i}", "params": PARAMS}) for i in range(3)]
    await store.create(
        NewBatch(id="msgbatch_t", owner="", created_at_ms=1, expires_at_ms=2**42),
        [StoredRequest(i, body) for i, body in enumerate(bodies)],
    )
    first, second = await store.take_next("job_a"), await store.take_next("job_b")
    assert first is not None and second is not None

    assert await store.unclaim("msgbatch_t", first.index)  # its key's quotas made it wait

    again, third = await store.take_next("job_c"), await store.take_next("job_d")
    assert again is not None and third is not None
    assert (again.index, third.index) == (first.index, 2)
    assert await store.take_next("job_e") is None
    state = await store.get("msgbatch_t")
    assert state is not None and state.processing == 3


async def test_a_batch_written_again_after_a_lost_reply_keeps_the_requests_it_started(
    pool: ArqRedis,
) -> None:
    # A front end whose create's reply a Redis restart cut off writes the batch again.
    store = BatchStore(pool, retention_s=60)
    batch = NewBatch(id="msgbatch_t", owner="", created_at_ms=1, expires_at_ms=2**42)
    requests = [
        StoredRequest(i, orjson.dumps({"custom_id": f"r{i}", "params": PARAMS})) for i in range(2)
    ]
    await store.create(batch, requests)
    assert await store.take_next("job_running") is not None

    await store.create(batch, requests)

    awaiting = await pool.hget(redis_keys.batch("msgbatch_t"), "awaiting")  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    assert awaiting == b"1"
    active = await pool.lrange(redis_keys.batches_active(), 0, -1)  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    assert active == [b"msgbatch_t"]
    taken = await store.take_next("job_next")
    assert taken is not None and taken.index == 1


async def test_a_request_claimed_as_the_queue_s_redis_goes_away_is_queued_once_it_is_back(
    pool: ArqRedis, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # The queue on a Redis of its own, so that it alone goes away between claim and submit.
    with EmbeddedRedis(tmp_path / "queue-redis") as queue_redis:
        queue_pool = await create_pool(RedisSettings.from_dsn(queue_redis.url))
        try:
            store = BatchStore(pool, retention_s=60)
            queue = JobQueue(queue_pool, queue_name="q", lifetimes=JobLifetimes.of(Settings()))
            dispatch = BatchDispatch(
                pool, store, queue, batch_max_waiting=10, max_runs=2, redis_outage_s=30
            )
            body = orjson.dumps({"custom_id": "only", "params": PARAMS})
            batch = NewBatch(id="msgbatch_t", owner="", created_at_ms=1, expires_at_ms=2**42)
            await store.create(batch, [StoredRequest(0, body)])
            await asyncio.to_thread(queue_redis.stop)
            feeding = asyncio.create_task(dispatch.feed(waiting_target=1))
            with SyncRedis.from_url(redis_server.url) as sync:
                inflight = redis_keys.batch_inflight("msgbatch_t")
                await async_wait_until(lambda: sync.hlen(inflight), 30, "the claim")
            await asyncio.to_thread(queue_redis.start)

            assert await feeding == 1
            [entry] = await store.inflight("msgbatch_t")
            assert await queue.state(entry.job_id) is not None
        finally:
            await queue_pool.aclose()
