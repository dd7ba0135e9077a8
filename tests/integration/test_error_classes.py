"""Errors in their right class: only Redis connection and timeout errors are outages; anything
else is a 500 api_error with its traceback (and the CLI's stderr tail) logged."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from shared.broker.outage import outlasting_outage
from shared.queue.job_queue import JobQueue
from shared.stream import journal
from shared.stream.chunk import Chunk
from shared.wire.messages import MessagesRequest
from tests import loopback
from tests.conftest import StackFactory
from tests.fakes import fake_cli
from tests.integration.conftest import FakeWorker, run_claimed
from tests.processes import http_ok, wait_until

BOUND_S = 20.0


async def journaled(redis: Redis, job_id: str) -> list[Chunk]:
    return [Chunk.from_json(raw) for raw in await journal.read_after(redis, job_id)]


async def test_a_cli_that_stops_reading_its_input_is_a_500_with_its_stderr_logged_not_an_outage(
    redis: Redis,
    job_queue: JobQueue,
    fake_worker: FakeWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # This fake CLI complains on stderr and exits at once; 2 MB of input cannot fit the pipe.
    worker = fake_worker("no-such-mode")
    request = MessagesRequest.model_validate(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}],
        }
    )
    job = await job_queue.submit(request, request_id="req_1", lane="interactive", lane_limit=10)
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(BOUND_S):
        await run_claimed(redis, worker, job)

    [chunk] = await journaled(redis, job.job_id)
    assert chunk.kind == "error"
    assert chunk.data["type"] == "api_error"
    assert "job queue" not in chunk.data["message"]
    assert "CLI" in chunk.data["message"]
    [stderr_line] = [r for r in caplog.records if "fake_cli: unknown FAKE_CLI_MODE" in r.message]
    assert job.job_id in stderr_line.message


async def test_a_broken_pipe_is_not_waited_out_as_a_redis_outage() -> None:
    tries = 0

    async def broken_pipe() -> None:
        nonlocal tries
        tries += 1
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        await outlasting_outage(broken_pipe, limit_s=BOUND_S)
    assert tries == 1


# --- the front end, as a real process -----------------------------------------------------------

HELLO_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_a_redis_response_error_is_a_500_api_error_with_its_traceback_logged(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), BOUND_S, "the front end")
    client = SyncRedis.from_url(stack.redis.url)
    try:
        client.config_set("maxmemory", 1)  # every write is now refused: "OOM command not allowed"
        response = loopback.post(f"{stack.url}/v1/messages", json=HELLO_BODY, timeout=BOUND_S)
    finally:
        client.config_set("maxmemory", 0)
        client.close()
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert "retry-after" not in response.headers
    logged = [orjson.loads(line) for line in stack.apis[0].log_text().splitlines()]
    [error] = [entry for entry in logged if entry["logger"] == "api.errors"]
    assert "Traceback" in error["exc"] and "redis.exceptions" in error["exc"]


def test_a_failure_mid_stream_that_is_not_a_fleet_error_ends_in_an_error_event(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    claude = fake_cli.install(
        tmp_path / "fake-claude", FAKE_CLI_MODE="stream_forever", FAKE_CLI_DRIP_S="0.1"
    )
    stack = make_stack(CCFLEET_CLAUDE_BIN=str(claude))
    client = SyncRedis.from_url(stack.redis.url)
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        body = {**HELLO_BODY, "stream": True}
        with loopback.stream("POST", f"{stack.url}/v1/messages", json=body, timeout=BOUND_S) as r:
            assert r.status_code == 200
            name = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: ") and name != "ping":
                    events.append((name, orjson.loads(line.removeprefix("data: "))))
                    if len(events) == 4:  # the answer streams: now Redis refuses its journal
                        journal = next(iter(client.scan_iter(match="ccfleet:job:*:journal")))
                        client.delete(journal)
                        client.set(journal, "not a stream")
    finally:
        client.close()
    assert [name for name, _ in events[:2]] == ["message_start", "content_block_start"]
    name, data = events[-1]
    assert name == "error", "the stream ended without an error event"
    assert data["error"]["type"] == "api_error"
