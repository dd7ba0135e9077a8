"""Several accounts, several workers: usage limits, failover, lanes, queue bounds.

Real workers with the real CLI log in with distinct OAuth tokens; the fake upstream answers
a chosen token with the subscription-limit headers of a Max account (docs/measured-facts.md §4).
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam

from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.fakes.upstream import (
    ErrorReply,
    HangReply,
    RecordedRequest,
    TextReply,
    subscription_limit_reply,
)
from tests.processes import http_ok, wait_until
from tests.sdk import SdkClients, text_of

MODEL = "claude-sonnet-5-5"
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello."}]
# A worker that is not woken by the queue and reads it every 3 s: others take work first.
SLOW_TO_PICK_UP = {"CCFLEET_WORKER_WAKE_ON_QUEUE": "false", "CCFLEET_WORKER_POLL_DELAY_S": "3"}


def token_of(request: RecordedRequest) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def accounts_stack(make_stack: StackFactory, *accounts: tuple[str, dict[str, str]]) -> Stack:
    stack = make_stack(workers=0, wait_ready=False)
    for name, env in accounts:
        stack.add_worker(CCFLEET_ACCOUNT=name, CLAUDE_CODE_OAUTH_TOKEN=f"token-{name}", **env)
    stack.wait_ready()
    wait_until(lambda: len(fleet(stack)["workers"]) == len(accounts), 20, "every worker beating")
    return stack


def fleet(stack: Stack) -> dict[str, Any]:
    body: dict[str, Any] = loopback.get(f"{stack.url}/v1/fleet", timeout=5).json()
    return body


def waiting(stack: Stack, lane: str | None = None) -> int:
    """Jobs waiting for a worker, in one lane or in all."""
    return sum(x["waiting"] for x in fleet(stack)["lanes"] if lane in (None, x["name"]))


def waiting_is(stack: Stack, count: int) -> bool:
    return waiting(stack) == count


def wait_for_heartbeats(stack: Stack, count: int) -> None:
    """Until the stack's one worker has beaten `count` more times."""
    for _ in range(count):
        (worker,) = fleet(stack)["workers"]
        wait_until(partial(beaten_since, stack, worker["beat_at_ms"]), 30, "a heartbeat")


def beaten_since(stack: Stack, beat_at_ms: int) -> bool:
    """The stack's one worker has beaten after `beat_at_ms`."""
    (worker,) = fleet(stack)["workers"]
    last: int = worker["beat_at_ms"]
    return last > beat_at_ms


def account(stack: Stack, name: str) -> dict[str, Any]:
    return next(a for a in fleet(stack)["accounts"] if a["name"] == name)


def worker_states(stack: Stack, account_name: str) -> list[str]:
    return [w["state"] for w in fleet(stack)["workers"] if w["account"] == account_name]


def test_an_account_at_its_limit_cools_until_the_reset_and_its_job_moves_to_another(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    resets_at = time.time() + 3600
    # alice is woken by the queue, bob reads it every 3 s: alice takes the first job.
    stack = accounts_stack(make_stack, ("alice", {}), ("bob", SLOW_TO_PICK_UP))

    def answer(request: RecordedRequest) -> ErrorReply | TextReply:
        if token_of(request) == "token-alice":
            return subscription_limit_reply(resets_at)
        return TextReply("Bob answers.")

    stack.upstream.set_responder(answer)
    message = sdk_clients.anthropic_client(stack.url, "k").messages.create(
        model=MODEL, max_tokens=50, messages=HELLO
    )
    assert text_of(message) == "Bob answers."
    assert [token_of(r) for r in stack.upstream.requests] == ["token-alice", "token-bob"]

    alice = account(stack, "alice")
    assert alice["cooling"] is True
    assert abs(alice["cooling_until"] - int(resets_at)) < 2
    assert alice["reason"] == "five_hour"
    for _ in range(2):
        sdk_clients.anthropic_client(stack.url, "k").messages.create(
            model=MODEL, max_tokens=50, messages=HELLO
        )
    tokens = [token_of(r) for r in stack.upstream.requests]
    assert tokens.count("token-alice") == 1, "a cooling account takes no more jobs"


def test_when_every_account_cools_clients_get_429_until_the_earliest_reset(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    now = time.time()
    resets = {"token-alice": now + 7200, "token-bob": now + 3 * 3600}
    stack = accounts_stack(make_stack, ("alice", {}), ("bob", {}))
    stack.upstream.set_responder(
        lambda request: subscription_limit_reply(resets[token_of(request)])
    )

    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk_clients.anthropic_client(stack.url, "k").messages.create(
            model=MODEL, max_tokens=50, messages=HELLO
        )
    error = caught.value
    retry_after = int(error.response.headers["retry-after"])
    assert 7100 < retry_after <= 7200, "the earliest reset, alice's"
    assert error.response.headers["x-should-retry"] == "false"
    assert sorted(token_of(r) for r in stack.upstream.requests) == ["token-alice", "token-bob"]

    later = loopback.post(
        f"{stack.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": HELLO},
        timeout=30,
    )
    assert later.status_code == 429
    assert later.json()["error"]["type"] == "rate_limit_error"
    assert len(stack.upstream.requests) == 2, "refused at the door: no upstream request"


def test_a_transient_upstream_error_is_retried_on_another_account(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    stack = accounts_stack(make_stack, ("alice", {}), ("bob", SLOW_TO_PICK_UP))

    def answer(request: RecordedRequest) -> ErrorReply | TextReply:
        if token_of(request) == "token-alice":
            return ErrorReply(529, "overloaded_error", "Overloaded")
        return TextReply("Recovered.")

    stack.upstream.set_responder(answer)
    message = sdk_clients.anthropic_client(stack.url, "k").messages.create(
        model=MODEL, max_tokens=50, messages=HELLO
    )
    assert text_of(message) == "Recovered."
    assert [token_of(r) for r in stack.upstream.requests] == ["token-alice", "token-bob"]
    assert account(stack, "alice")["cooling"] is False, "a 529 does not cool an account"


def test_retries_are_bounded(make_stack: StackFactory, sdk_clients: SdkClients) -> None:
    stack = make_stack(CCFLEET_JOB_MAX_ATTEMPTS="3", CCFLEET_RETRY_BACKOFF_S="0.05")
    stack.upstream.set_responder(lambda _request: ErrorReply(500, "api_error", "boom"))
    with pytest.raises(anthropic.InternalServerError):
        sdk_clients.anthropic_client(stack.url, "k").messages.create(
            model=MODEL, max_tokens=50, messages=HELLO
        )
    assert len(stack.upstream.requests) == 3


def _send_in_thread(
    stack: Stack, marker: str, lane: str, results: dict[str, Any]
) -> threading.Thread:
    def send() -> None:
        results[marker] = loopback.post(
            f"{stack.url}/v1/messages",
            json={
                "model": MODEL,
                "max_tokens": 20,
                "messages": [{"role": "user", "content": marker}],
            },
            headers={"x-ccfleet-lane": lane},
            timeout=60,
        )

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def _user_text(request: RecordedRequest) -> str:
    # The last user message: for models that take mid-conversation system messages (the 5.x
    # family), the CLI appends one with the environment after it.
    last = next(m for m in reversed(request.body["messages"]) if m["role"] == "user")
    content = last["content"]
    texts: list[str] = (
        [b["text"] for b in content if b.get("type") == "text"]
        if isinstance(content, list)
        else [content]
    )
    return next(t for t in texts if not t.lstrip().startswith("<system-reminder>"))


def test_waiting_interactive_work_goes_before_batch_work_and_each_lane_is_first_come_first_served(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(CCFLEET_WORKER_SLOTS="1", CCFLEET_RESERVED_INTERACTIVE_SLOTS="0")
    all_queued = threading.Event()
    stack.upstream.enqueue(HangReply(60, "busy", until=all_queued))  # holds the one slot
    results: dict[str, Any] = {}
    threads = [_send_in_thread(stack, "first", "interactive", results)]
    arrivals = [
        ("batch-1", "batch"),
        ("batch-2", "batch"),
        ("chat-1", "interactive"),
        ("chat-2", "interactive"),
    ]
    try:
        assert stack.upstream.wait_for_requests(1, 30)
        for queued, (marker, lane) in enumerate(arrivals, start=1):
            threads.append(_send_in_thread(stack, marker, lane, results))
            wait_until(partial(waiting_is, stack, queued), 30, f"{marker} to queue")  # in order
    finally:
        all_queued.set()
    for thread in threads:
        thread.join(90)
    assert all(response.status_code == 200 for response in results.values())
    order = [_user_text(r) for r in stack.upstream.requests]
    assert order == ["first", "chat-1", "chat-2", "batch-1", "batch-2"]


def test_batch_work_leaves_the_reserved_slots_to_interactive_work(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(CCFLEET_WORKER_SLOTS="2", CCFLEET_RESERVED_INTERACTIVE_SLOTS="1")
    release_batch = threading.Event()  # batch answers wait until the test has seen the order
    stack.upstream.set_responder(
        lambda r: (
            HangReply(60, "slow", until=release_batch)
            if _user_text(r).startswith("batch")
            else TextReply("quick")
        )
    )
    results: dict[str, Any] = {}
    threads = [_send_in_thread(stack, f"batch-{i}", "batch", results) for i in range(2)]
    try:
        assert stack.upstream.wait_for_requests(1, 30)
        wait_until(lambda: waiting(stack, "batch") == 1, 30, "the second batch job to queue")
        # The worker polls every 10 ms: two heartbeats on, it has passed over the job many times.
        wait_for_heartbeats(stack, 2)
        assert waiting(stack, "batch") == 1
        assert len(stack.upstream.requests) == 1, "the second batch job may not take the slot"
        threads.append(_send_in_thread(stack, "chat", "interactive", results))
        assert stack.upstream.wait_for_requests(2, 30)
        assert _user_text(stack.upstream.requests[1]) == "chat"
    finally:
        release_batch.set()
    for thread in threads:
        thread.join(90)
    assert [response.status_code for response in results.values()] == [200, 200, 200]


def test_a_full_lane_and_a_long_wait_are_529_with_retry_after(make_stack: StackFactory) -> None:
    stack = make_stack(
        workers=0,
        wait_ready=False,
        CCFLEET_INTERACTIVE_MAX_WAITING="1",
        CCFLEET_INTERACTIVE_MAX_WAIT_S="3",
    )
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    results: dict[str, Any] = {}
    waiting = _send_in_thread(stack, "waits", "interactive", results)
    wait_until(lambda: fleet(stack)["lanes"][0]["waiting"] == 1, 10, "one job waiting")
    full = loopback.post(
        f"{stack.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": HELLO},
        timeout=30,
    )
    assert full.status_code == 529
    assert full.json()["error"]["type"] == "overloaded_error"
    assert int(full.headers["retry-after"]) >= 1
    waiting.join(30)
    timed_out = results["waits"]
    assert timed_out.status_code == 529
    assert "in time" in timed_out.json()["error"]["message"]
    assert int(timed_out.headers["retry-after"]) >= 1
    assert fleet(stack)["lanes"][0]["waiting"] == 0, "the timed-out job left the queue"


def test_every_worker_of_a_cooling_account_stops_taking_jobs_and_only_one_request_hits_the_limit(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    resets_at = time.time() + 3600
    # Three replicas of alice are woken by the queue, bob reads it every 3 s: alice's
    # replicas are first to every job unless they know their account cools.
    stack = accounts_stack(make_stack, *[("alice", {}) for _ in range(3)], ("bob", SLOW_TO_PICK_UP))

    def answer(request: RecordedRequest) -> ErrorReply | TextReply:
        if token_of(request) == "token-alice":
            return subscription_limit_reply(resets_at)
        return TextReply("Bob answers.")

    stack.upstream.set_responder(answer)
    for _ in range(3):
        message = sdk_clients.anthropic_client(stack.url, "k").messages.create(
            model=MODEL, max_tokens=50, messages=HELLO
        )
        assert text_of(message) == "Bob answers."
    tokens = [token_of(r) for r in stack.upstream.requests]
    assert tokens.count("token-alice") == 1, "one request into the limit, not one per replica"
    wait_until(
        lambda: worker_states(stack, "alice") == ["cooling"] * 3,
        5,
        "every replica of alice reporting the cooldown",
    )

    # A replica started during the cooldown (a restarted pod) cools from its first beat.
    stack.add_worker(CCFLEET_ACCOUNT="alice", CLAUDE_CODE_OAUTH_TOKEN="token-alice")
    wait_until(lambda: len(fleet(stack)["workers"]) == 5, 20, "the new replica beating")
    assert worker_states(stack, "alice") == ["cooling"] * 4
    message = sdk_clients.anthropic_client(stack.url, "k").messages.create(
        model=MODEL, max_tokens=50, messages=HELLO
    )
    assert text_of(message) == "Bob answers."
    assert [token_of(r) for r in stack.upstream.requests].count("token-alice") == 1
