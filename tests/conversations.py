"""Conversations sent turn by turn through a whole stack, and where each turn went: for the
tests of which worker or account a conversation's turns reach (tests/integration/
test_resident_routing.py, test_conversation_affinity.py). The worker that served a turn is
read from its job's record, the workers' accounts from /v1/fleet."""

from __future__ import annotations

from typing import Any

import redis

from shared.broker import redis_keys
from tests import loopback
from tests.conftest import Stack

MODEL = "claude-sonnet-4-6"
HELLO = {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}


def conversation(n: int, turns: int, reply: dict[str, Any] = HELLO) -> list[list[dict[str, Any]]]:
    """The message lists of a conversation's turns, each one turn (and `reply`) longer than
    the last."""
    history: list[dict[str, Any]] = []
    sent = []
    for t in range(turns):
        history = [*history, {"role": "user", "content": f"Conversation {n}, turn {t}."}]
        sent.append(history)
        history = [*history, reply]
    return sent


def turn(stack: Stack, messages: list[dict[str, Any]]) -> str:
    """Send one Messages turn (streaming); the id of the worker that served it."""
    body = {"model": MODEL, "max_tokens": 50, "stream": True, "messages": messages}
    return worker_of(stack, streamed_job(stack, "/v1/messages", body, "event: error"))


def responses_turn(stack: Stack, text: str, cache_key: str) -> str:
    """Send one Responses turn (streaming) naming its conversation; the id of the worker that
    served it."""
    body = {
        "model": MODEL,
        "input": text,
        "stream": True,
        "store": False,
        "prompt_cache_key": cache_key,
    }
    return worker_of(stack, streamed_job(stack, "/v1/responses", body, "event: response.failed"))


def streamed_job(stack: Stack, path: str, body: dict[str, Any], failure: str) -> str:
    """POST a streaming request and read its stream to the end; the job id its events carry.
    A `failure` line in the stream fails the test."""
    job_id = ""
    with loopback.stream("POST", f"{stack.url}{path}", json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id:") and not job_id:
                job_id = line[3:].strip().rpartition(":")[0]
            if line.startswith(failure):
                raise AssertionError(f"the turn failed: {line}")
    return job_id


def worker_of(stack: Stack, job_id: str) -> str:
    """The id of the worker that started `job_id`."""
    client = redis.Redis.from_url(stack.redis.url)
    try:
        worker: bytes | None = client.hget(redis_keys.job_record(job_id), "worker")  # type: ignore[assignment]  # redis-py 5 types replies as str, sync-or-async
    finally:
        client.close()
    assert worker, job_id
    return worker.decode()


def fleet(stack: Stack) -> dict[str, Any]:
    body: dict[str, Any] = loopback.get(f"{stack.url}/v1/fleet", timeout=5).json()
    return body


def workers(stack: Stack) -> dict[str, dict[str, Any]]:
    """The fleet's workers by id."""
    return {worker["id"]: worker for worker in fleet(stack)["workers"]}


def account_of(stack: Stack, worker_id: str) -> str:
    account: str = workers(stack)[worker_id]["account"]
    return account
