"""A job cancelled before any worker took it gives back what its key's quotas hold at once: its
concurrency lease and its tokens reservation. (A worker ends the hold of a job it ran; a job
nobody ran has nobody else to end it.)

One stack for the module: Redis and one front end with auth on, and no worker, so every job
stays queued until its client leaves. Each test uses a key of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
import redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests import client_keys, loopback
from tests.conftest import Stack
from tests.fakes.upstream import FakeUpstream
from tests.processes import http_ok, wait_until

pytestmark = pytest.mark.xdist_group("unstarted_leases_stack")

SERVER_SECRET = "test-server-secret-" + "fedcba9876543210" * 2
HELLO = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}
LEFT_AFTER_S = 1.5  # a client that waits this long for a reply, then leaves


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("unstarted")
    with EmbeddedRedis(root / "redis") as server:
        stack = Stack(redis=server, upstream=session_upstream, claude_bin="claude", root=root)
        try:
            stack.add_api(CCFLEET_AUTH="on", CCFLEET_AUTH_SECRET=SERVER_SECRET)
            wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
            yield stack
        finally:
            stack.stop()


def create_key(stack: Stack, name: str, **limits: Any) -> str:
    return asyncio.run(client_keys.create_key(stack.redis.url, SERVER_SECRET, name, **limits))


def leave_unanswered(stack: Stack, secret: str, body: dict[str, Any], **headers: str) -> None:
    """Send a request that queues (no worker takes it), and leave before any answer."""
    with pytest.raises(httpx.ReadTimeout):  # not refused: a refusal answers at once
        loopback.post(
            f"{stack.url}/v1/messages",
            json=body,
            headers={"x-api-key": secret, **headers},
            timeout=LEFT_AFTER_S,
        )


# The casts below: redis-py 5 types each command's reply as sync-or-async.
def in_flight(stack: Stack, key: str) -> int:
    with redis.Redis.from_url(stack.redis.url) as client:
        return cast(int, client.zcard(redis_keys.quota_in_flight(key)))


def reserved(stack: Stack, key: str) -> list[bytes]:
    with redis.Redis.from_url(stack.redis.url) as client:
        members = cast(list[bytes], client.zrange(redis_keys.quota_tokens(key), 0, -1))
    return [member for member in members if member.startswith(b"reserved:")]


def waiting_jobs(stack: Stack) -> list[str]:
    with redis.Redis.from_url(stack.redis.url) as client:
        jobs = cast(list[bytes], client.zrange(redis_keys.lane_waiting("interactive"), 0, -1))
    return [job.decode() for job in jobs]


def status(stack: Stack, job_id: str) -> str:
    with redis.Redis.from_url(stack.redis.url) as client:
        raw = cast(bytes | None, client.hget(redis_keys.job_record(job_id), "status"))
    return (raw or b"").decode()


def test_a_job_cancelled_before_a_worker_takes_it_gives_back_its_tokens_reservation_at_once(
    stack: Stack,
) -> None:
    secret = create_key(stack, "left-queued", tpm=100_000, concurrency=1)
    leave_unanswered(stack, secret, HELLO)
    wait_until(lambda: not reserved(stack, "left-queued"), 10, "the reservation given back")
    assert in_flight(stack, "left-queued") == 0


def test_a_queued_job_resumed_and_left_again_ends_its_concurrency_lease_with_the_job(
    stack: Stack,
) -> None:
    secret = create_key(stack, "resumed-queued", tpm=100_000, concurrency=1)
    body = {**HELLO, "stream": True}
    leave_unanswered(stack, secret, body, **{"x-ccfleet-resume-window": "60"})
    [job_id] = waiting_jobs(stack)  # kept for its window, its lease with it
    assert in_flight(stack, "resumed-queued") == 1

    leave_unanswered(stack, secret, body, **{"last-event-id": f"{job_id}:0"})
    wait_until(lambda: status(stack, job_id) == "cancelled", 10, "the job cancelled")
    wait_until(lambda: in_flight(stack, "resumed-queued") == 0, 10, "the lease ended")
    assert not reserved(stack, "resumed-queued")
