"""Dispatch, the front end queueing a job -> a worker handing it to a CLI, is three Redis round
trips: the front end's submit script, the worker's claim script and arq's read of the job
(docs/benchmarks.md). Between its claim and the hand-off a worker waits for nothing else.

Redis's MONITOR stamps each command it runs with the clock the worker stamps its hand-off
with (the job record's `handed_off_at_ms`): the commands before the hand-off are counted, not
timed. The job function is called as the worker's poll loop calls it, after the claim
(arq's read of the job comes before it and is not part of this)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from redis.asyncio import Redis
from redis.asyncio.client import Monitor, MonitorCommandInfo

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from shared.fleet.affinity import conversation_key
from shared.queue.job import JobRequest
from shared.queue.job_queue import JobQueue
from shared.wire.messages import MessagesRequest
from tests.conftest import StackFactory
from tests.fakes import fake_cli
from tests.integration.conftest import FakeWorker, claim
from tests.waiting import async_wait_until
from worker.cli.resident import ResidentConversations
from worker.context import JobContext, WorkerContext
from worker.job_function import run_messages

HI = {"role": "user", "content": "hi"}
REQUEST = MessagesRequest.model_validate(
    {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [HI]}
)


@contextlib.asynccontextmanager
async def monitored(server: EmbeddedRedis) -> AsyncIterator[list[MonitorCommandInfo]]:
    """Every command the server runs while inside, as MONITOR reports it."""
    seen: list[MonitorCommandInfo] = []

    async def collect(monitor: Monitor) -> None:
        async for command in monitor.listen():
            seen.append(command)

    async with Redis.from_url(server.url) as client, client.monitor() as monitor:
        task = asyncio.create_task(collect(monitor), name="test-monitor")
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def around_hand_off(
    server: EmbeddedRedis, redis: Redis, worker: WorkerContext, job: JobRequest
) -> tuple[list[str], list[str]]:
    """The commands Redis gets from clients (a script as one) between the worker's claim on
    `job`'s attempt and its hand-off of the request to the CLI; and after, to the job's end."""
    claimed = await claim(worker.queue, job, worker.state.worker_id, worker.state.account)
    async with monitored(server) as seen:
        await run_messages(JobContext(worker=worker, redis=redis, claim=claimed), job.model_dump())
        record = await redis.hgetall(redis_keys.job_record(job.job_id))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        handed_off_s = float(record[b"handed_off_at_ms"]) / 1000
        await async_wait_until(
            lambda: any(c["command"].startswith("HGETALL") for c in seen), 10, "MONITOR"
        )
    sent = [c for c in seen if c["client_type"] != "lua"]
    before = [c["command"] for c in sent if c["time"] < handed_off_s]
    return before, [c["command"] for c in sent if c["time"] >= handed_off_s]


async def test_a_worker_hands_a_claimed_request_to_its_cli_before_any_redis_round_trip(
    redis_server: EmbeddedRedis, redis: Redis, job_queue: JobQueue, fake_worker: FakeWorker
) -> None:
    job = await job_queue.submit(REQUEST, request_id="req_1", lane="interactive", lane_limit=10)
    worker = fake_worker("answer")
    before, after = await around_hand_off(redis_server, redis, worker, job)
    assert before == []
    # The heartbeat saying the slot is busy still goes out: once the CLI has the request.
    heartbeat = redis_keys.worker_heartbeat(worker.state.worker_id)
    assert any(c.startswith(f"HSET {heartbeat} ") and " busy 1 " in c for c in after), after


async def test_a_worker_that_may_keep_the_conversation_notes_itself_after_the_hand_off(
    redis_server: EmbeddedRedis, redis: Redis, job_queue: JobQueue, fake_worker: FakeWorker
) -> None:
    job = await job_queue.submit(REQUEST, request_id="req_1", lane="interactive", lane_limit=10)
    residents = ResidentConversations(max_resident=4, idle_s=300)
    worker = dataclasses.replace(fake_worker("answer"), residents=residents)
    try:
        before, _ = await around_hand_off(redis_server, redis, worker, job)
    finally:
        await residents.close()
    assert before == []
    noted = await redis.get(redis_keys.conversation_worker(conversation_key(REQUEST)))
    assert noted == worker.state.worker_id.encode(), "with the answer's first chunk"
    assert await redis.ttl(redis_keys.conversation_worker(conversation_key(REQUEST))) > 250


async def test_a_front_end_reads_a_conversations_account_and_worker_in_one_round_trip(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = make_stack(CCFLEET_CLAUDE_BIN=str(fake_cli.install(tmp_path / "fake-claude")))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [HI]}
    async with monitored(redis_server) as seen, httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{stack.url}/v1/messages", json=body)
        assert response.status_code == 200, response.text
    conversation = conversation_key(REQUEST)
    verbs = [
        c["command"].split(" ")[0]
        for c in seen
        if c["client_type"] != "lua" and f":conversation:{conversation}:" in c["command"]
    ]
    # The scripts are the worker's first chunk noting them for the next turn.
    assert [verb for verb in verbs if verb != "EVALSHA"] == ["MGET"]
