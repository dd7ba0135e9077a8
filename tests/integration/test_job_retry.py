"""arq re-runs a job whose worker died; the re-run must not start a second answer.

`run_messages` is called as a worker calls it, with the claim its poll loop made. The CLI is
a path that does not exist: running it would end the job with an
"Internal server error" chunk instead of the expected one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from shared.errors import CliFailed
from shared.queue.job import AttemptId, JobRequest
from shared.queue.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings
from shared.stream import journal
from shared.stream.chunk import Chunk
from shared.wire.messages import MessagesRequest
from tests.integration.conftest import run_claimed
from worker.cli.config import CliConfig
from worker.context import WorkerContext, WorkerState
from worker.reply.chunk_publisher import ChunkPublisher

MESSAGE_START: dict[str, Any] = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    },
}
EARLIER_RUN: list[dict[str, Any]] = [
    MESSAGE_START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hal"}},
]
CLOSING: list[dict[str, Any]] = [
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]


@pytest.fixture
async def worker(redis_server: EmbeddedRedis, tmp_path: Path) -> AsyncIterator[WorkerContext]:
    # One attempt only: a failure ends the job here rather than leave it to other workers.
    settings = Settings(redis_url="redis://unused", journal_ttl_s=600, job_max_attempts=1)
    cli = CliConfig(
        claude_bin=str(tmp_path / "no-such-claude"),
        base_env={"PATH": "/usr/bin:/bin"},
        work_root=str(tmp_path),
        timeout_s=30,
        kill_grace_s=0.5,
    )
    state = WorkerState(worker_id="w-test", host="test", account="a", slots=1, cli_version="x")
    pool = await create_pool(RedisSettings.from_dsn(redis_server.url))
    queue = JobQueue(pool, queue_name="test-queue", lifetimes=JobLifetimes.of(settings))
    try:
        yield WorkerContext(settings=settings, cli=cli, state=state, queue=queue)
    finally:
        await pool.aclose()


async def submitted(worker: WorkerContext) -> JobRequest:
    """A job queued as a front end queues it (its record says attempt 1 is current)."""
    request = MessagesRequest.model_validate(
        {
            "model": "claude-sonnet-5-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    return await worker.queue.submit(
        request, request_id="req_test", lane="interactive", lane_limit=10
    )


async def earlier_run(redis: Redis, job_id: str, events: list[dict[str, Any]]) -> None:
    publisher = ChunkPublisher(redis, job_id, attempt=1, ttl_s=600, max_chunks=1000)
    for event in events:
        await publisher.publish_event(event)


async def journaled(redis: Redis, job_id: str) -> list[Chunk]:
    return [Chunk.from_json(raw) for raw in await journal.read_after(redis, job_id)]


async def test_a_rerun_after_a_partial_answer_ends_the_stream_with_one_error(
    redis: Redis, worker: WorkerContext
) -> None:
    job = await submitted(worker)
    job_id = job.job_id
    await earlier_run(redis, job_id, EARLIER_RUN)
    await run_claimed(redis, worker, job)
    chunks = await journaled(redis, job_id)
    assert [chunk.data for chunk in chunks[:3]] == EARLIER_RUN
    assert len(chunks) == 4
    error = chunks[3]
    assert (error.seq, error.kind, error.is_terminal) == (4, "error", True)
    expected = CliFailed("The worker answering this request stopped mid-answer; please retry.")
    assert error.data == expected.to_error()


async def test_a_rerun_after_a_complete_answer_adds_nothing(
    redis: Redis, worker: WorkerContext
) -> None:
    job = await submitted(worker)
    job_id = job.job_id
    await earlier_run(redis, job_id, EARLIER_RUN + CLOSING)
    before = await journaled(redis, job_id)
    await run_claimed(redis, worker, job)
    assert await journaled(redis, job_id) == before
    assert before[-1].event == "message_stop"


async def test_a_rerun_after_an_error_adds_nothing(redis: Redis, worker: WorkerContext) -> None:
    job = await submitted(worker)
    job_id = job.job_id
    publisher = ChunkPublisher(redis, job_id, attempt=1, ttl_s=600, max_chunks=1000)
    await publisher.publish_event(MESSAGE_START)
    await publisher.publish_error(
        CliFailed("The Claude Code CLI exited (code 1) before answering.")
    )
    before = await journaled(redis, job_id)
    await run_claimed(redis, worker, job)
    assert await journaled(redis, job_id) == before


async def test_a_first_run_whose_cli_cannot_start_ends_with_an_error_saying_so(
    redis: Redis, worker: WorkerContext
) -> None:
    # The control for the tests above: with an empty journal the (missing) CLI is run.
    job = await submitted(worker)
    job_id = job.job_id
    await run_claimed(redis, worker, job)
    [chunk] = await journaled(redis, job_id)
    assert (chunk.seq, chunk.kind) == (1, "error")
    assert chunk.data == {
        "type": "api_error",
        "message": "The Claude Code CLI could not be started (No such file or directory).",
    }
    assert worker.state.busy == 0
    assert "could not be started" in worker.state.last_error


async def test_a_stale_attempt_is_skipped_and_the_current_one_runs(
    redis: Redis, worker: WorkerContext
) -> None:
    queue: JobQueue = worker.queue
    first = await submitted(worker)
    second = await queue.requeue(first, avoid_accounts=["alice"])
    assert second is not None and second.attempt == 2 and second.avoid_accounts == ["alice"]
    assert await queue.requeue(first, avoid_accounts=[]) is None, "attempt 1 is no longer current"
    await run_claimed(redis, worker, first)
    assert await journaled(redis, first.job_id) == [], "the stale attempt ran nothing"
    await run_claimed(redis, worker, second)
    [chunk] = await journaled(redis, first.job_id)
    assert chunk.kind == "error"
    state = await queue.state(first.job_id)
    assert state is not None and state.status == "done"
    assert state.attempt_id == str(AttemptId.of(second))
    assert await queue.record(first.job_id) is None, "the request is dropped once done"


async def test_a_cancelled_job_is_not_started(redis: Redis, worker: WorkerContext) -> None:
    queue: JobQueue = worker.queue
    job = await submitted(worker)
    await queue.cancel(job.job_id)
    await run_claimed(redis, worker, job)
    assert await journaled(redis, job.job_id) == []
    assert await redis.zcard(redis_keys.lane_waiting("interactive")) == 0
