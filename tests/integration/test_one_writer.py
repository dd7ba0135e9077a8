"""One writer per job: chunks are fenced on the attempt number, atomically in Redis. A worker
wrongly declared dead keeps running; once its job moved to another attempt, its chunks are
refused and it stops its CLI, so the two never interleave."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.queue.job import JobRequest
from shared.queue.job_queue import JobQueue
from shared.stream import journal
from shared.stream.chunk import Chunk
from shared.wire.messages import MessagesRequest
from tests.integration.conftest import FakeWorker, claim, run_claimed
from worker.reply.chunk_publisher import AttemptSuperseded, ChunkPublisher

BOUND_S = 20.0
REQUEST = MessagesRequest.model_validate(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
)


def text_event(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


def writer(redis: Redis, job: JobRequest, attempt: int) -> ChunkPublisher:
    return ChunkPublisher(redis, job.job_id, attempt=attempt, ttl_s=600, max_chunks=1000)


def was_reaped(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def journaled(redis: Redis, job_id: str) -> list[Chunk]:
    return [Chunk.from_json(raw) for raw in await journal.read_after(redis, job_id)]


async def test_two_writers_of_one_job_only_the_current_attempts_chunks_are_journaled(
    redis: Redis, job_queue: JobQueue
) -> None:
    job = await job_queue.submit(REQUEST, request_id="req_1", lane="interactive", lane_limit=10)
    assert (await claim(job_queue, job, "worker-declared-dead")).outcome == "claimed"
    stale = writer(redis, job, attempt=1)
    following = await job_queue.requeue(job, avoid_accounts=[])  # a relay gave up on worker 1
    assert following is not None and following.attempt == 2
    current = writer(redis, following, attempt=2)

    await current.publish_event(text_event("current 1"))
    with pytest.raises(AttemptSuperseded):
        await stale.publish_event(text_event("stale 1"))
    await current.publish_event(text_event("current 2"))
    with pytest.raises(AttemptSuperseded):
        await stale.publish_event(text_event("stale 2"))

    chunks = await journaled(redis, job.job_id)
    assert [chunk.data["delta"]["text"] for chunk in chunks] == ["current 1", "current 2"]
    assert [chunk.seq for chunk in chunks] == [1, 2]
    assert stale.seq == 0


async def test_a_cancelled_jobs_writer_is_refused(redis: Redis, job_queue: JobQueue) -> None:
    job = await job_queue.submit(REQUEST, request_id="req_2", lane="interactive", lane_limit=10)
    assert (await claim(job_queue, job, "worker-1")).outcome == "claimed"
    publisher = writer(redis, job, attempt=1)
    await publisher.publish_event(text_event("before"))
    await job_queue.cancel(job.job_id)
    with pytest.raises(AttemptSuperseded):
        await publisher.publish_event(text_event("after"))
    assert [c.data["delta"]["text"] for c in await journaled(redis, job.job_id)] == ["before"]


async def test_a_superseded_attempt_stops_its_cli_and_publishes_nothing_more(
    redis: Redis, job_queue: JobQueue, fake_worker: FakeWorker, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pid"
    worker = fake_worker("stream_forever", FAKE_CLI_DRIP_S="0.02", FAKE_CLI_PID_FILE=str(pid_file))
    job = await job_queue.submit(REQUEST, request_id="req_3", lane="interactive", lane_limit=10)
    run = asyncio.create_task(run_claimed(redis, worker, job))
    async with asyncio.timeout(BOUND_S):
        while len(await journaled(redis, job.job_id)) < 5:  # noqa: ASYNC110 - Redis has no wait for it
            await asyncio.sleep(0.02)

    await job_queue.requeue(job, avoid_accounts=[])  # the job is attempt 2's now
    async with asyncio.timeout(BOUND_S):
        await run  # ends by itself: its next chunk was refused
    cli_pid = int(pid_file.read_text())
    assert was_reaped(cli_pid), "the stale attempt's CLI was stopped and reaped"
    chunks = await journaled(redis, job.job_id)
    assert all(chunk.kind == "event" for chunk in chunks), "no error chunk from the stale attempt"
    record = await job_queue.state(job.job_id)
    assert record is not None and record.status == "waiting", "attempt 2's record is untouched"
