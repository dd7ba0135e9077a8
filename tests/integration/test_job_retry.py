"""arq re-runs a job whose worker died; the re-run must not start a second answer.

`run_messages` is called as arq calls it, with a ctx holding the Redis client and the worker
context. The CLI is a path that does not exist: running it would end the job with an
"Internal server error" chunk instead of the expected one.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from shared import keys
from shared.errors import CliFailed
from shared.jobs import Chunk, JobRequest
from shared.messages import MessagesRequest
from shared.settings import Settings
from worker.answer import CliConfig
from worker.chunk_publisher import ChunkPublisher
from worker.context import WorkerContext, WorkerState
from worker.jobs import run_messages

MESSAGE_START: dict[str, Any] = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
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
def worker_ctx(redis: Redis, tmp_path: Path) -> dict[str, Any]:
    settings = Settings(redis_url="redis://unused", journal_ttl_s=600)
    cli = CliConfig(
        claude_bin=str(tmp_path / "no-such-claude"),
        base_env={"PATH": "/usr/bin:/bin"},
        work_root=str(tmp_path),
        timeout_s=30,
        kill_grace_s=0.5,
    )
    state = WorkerState(worker_id="w-test", host="test", account="a", slots=1, cli_version="x")
    worker = WorkerContext(settings=settings, cli=cli, state=state)
    return {"redis": redis, "worker": worker, "job_try": 2}


def job_payload(job_id: str) -> dict[str, Any]:
    request = MessagesRequest.model_validate(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    job = JobRequest(
        job_id=job_id,
        request_id="req_test",
        request=request,
        enqueued_at_ms=int(time.time() * 1000),
    )
    return job.model_dump(mode="json", exclude_unset=True)


async def earlier_run(redis: Redis, job_id: str, events: list[dict[str, Any]]) -> None:
    publisher = ChunkPublisher(redis, job_id, ttl_s=600, max_chunks=1000)
    for event in events:
        await publisher.publish_event(event)


async def journal(redis: Redis, job_id: str) -> list[Chunk]:
    entries = await redis.xrange(keys.job_journal(job_id))
    return [Chunk.from_json(fields[b"c"]) for _entry_id, fields in entries]


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


async def test_a_rerun_after_a_partial_answer_ends_the_stream_with_one_error(
    redis: Redis, worker_ctx: dict[str, Any]
) -> None:
    job_id = new_job_id()
    await earlier_run(redis, job_id, EARLIER_RUN)
    await run_messages(worker_ctx, job_payload(job_id))
    chunks = await journal(redis, job_id)
    assert [chunk.data for chunk in chunks[:3]] == EARLIER_RUN
    assert len(chunks) == 4
    error = chunks[3]
    assert (error.seq, error.kind, error.is_terminal) == (4, "error", True)
    expected = CliFailed("The worker answering this request stopped mid-answer; please retry.")
    assert error.data == expected.to_error()


async def test_a_rerun_after_a_complete_answer_adds_nothing(
    redis: Redis, worker_ctx: dict[str, Any]
) -> None:
    job_id = new_job_id()
    await earlier_run(redis, job_id, EARLIER_RUN + CLOSING)
    before = await journal(redis, job_id)
    await run_messages(worker_ctx, job_payload(job_id))
    assert await journal(redis, job_id) == before
    assert before[-1].event == "message_stop"


async def test_a_rerun_after_an_error_adds_nothing(
    redis: Redis, worker_ctx: dict[str, Any]
) -> None:
    job_id = new_job_id()
    publisher = ChunkPublisher(redis, job_id, ttl_s=600, max_chunks=1000)
    await publisher.publish_event(MESSAGE_START)
    await publisher.publish_error(
        CliFailed("The Claude Code CLI exited (code 1) before answering.")
    )
    before = await journal(redis, job_id)
    await run_messages(worker_ctx, job_payload(job_id))
    assert await journal(redis, job_id) == before


async def test_a_first_run_whose_cli_cannot_start_ends_with_an_error_saying_so(
    redis: Redis, worker_ctx: dict[str, Any]
) -> None:
    # The control for the tests above: with an empty journal the (missing) CLI is run.
    job_id = new_job_id()
    await run_messages(worker_ctx, job_payload(job_id))
    [chunk] = await journal(redis, job_id)
    assert (chunk.seq, chunk.kind) == (1, "error")
    assert chunk.data == {
        "type": "api_error",
        "message": "The Claude Code CLI could not be started (No such file or directory).",
    }
    assert worker_ctx["worker"].state.busy == 0
    assert "could not be started" in worker_ctx["worker"].state.last_error
