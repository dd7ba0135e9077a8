"""Headroom per account and the account policy, with the real CLI on OAuth logins and the
fake upstream's unified rate-limit headers (tests/fakes/upstream.py's AccountUsage).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from anthropic.types import MessageParam
from redis.asyncio import Redis

from shared.fleet.headroom import UsageWindow, record_windows
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.fakes import fake_cli
from tests.fakes.upstream import (
    AccountUsage,
    DelayedReply,
    HangReply,
    RecordedRequest,
    Reply,
    TextReply,
)
from tests.integration.test_fleet_accounts import (
    SLOW_TO_PICK_UP,
    account,
    accounts_stack,
    fleet,
    token_of,
)
from tests.sdk import SdkClients, text_of
from tests.waiting import wait_until

MODEL = "claude-sonnet-5-5"
FILL_FIRST = {"CCFLEET_ACCOUNT_POLICY": "fill-first"}


def account_view(stack: Stack, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in fleet(stack)["accounts"] if a["name"] == name)
    return found


def used_is(stack: Stack, name: str, expected: float) -> bool:
    return abs(float(account_view(stack, name)["utilization"]) - expected) < 1e-6


def naming_the_account(request: RecordedRequest) -> TextReply:
    return TextReply(f"From {token_of(request).removeprefix('token-')}.")


class Conversation:
    """A client's conversation: each turn sends the whole history, as the SDKs' users do."""

    def __init__(self, stack: Stack, sdk_clients: SdkClients, opening: str) -> None:
        self.client = sdk_clients.anthropic_client(stack.url, "k", timeout_s=30)
        self.history: list[MessageParam] = []
        self.opening = opening

    def turn(self) -> str:
        """Send the next turn; the name of the account that answered it."""
        self.history.append({"role": "user", "content": f"{self.opening} {len(self.history)}"})
        message = self.client.messages.create(model=MODEL, max_tokens=50, messages=self.history)
        text = text_of(message)
        self.history.append({"role": "assistant", "content": text})
        return text.removeprefix("From ").removesuffix(".")


def test_accounts_fill_in_drain_order_and_a_conversation_hops_once_past_the_threshold(
    make_stack: StackFactory, sdk_clients: SdkClients
) -> None:
    """fill-first: alice (priority 1) serves until her 5-hour window passes 0.9, then bob
    (priority 2); the conversation begun on alice moves to bob and stays there. Each account's
    windows, as the CLI's rate_limit_event reported them, show in /v1/fleet and /metrics."""
    stack = accounts_stack(
        make_stack,
        ("alice", {**FILL_FIRST, "CCFLEET_ACCOUNT_PRIORITY": "1"}),
        ("bob", {**FILL_FIRST, "CCFLEET_ACCOUNT_PRIORITY": "2"}),
    )
    stack.upstream.usage["token-alice"] = AccountUsage(five_hour=0.85, rise_per_request=0.1)
    stack.upstream.usage["token-bob"] = AccountUsage(five_hour=0.2)
    stack.upstream.set_responder(naming_the_account)
    chat = Conversation(stack, sdk_clients, "Tell me more.")

    assert chat.turn() == "alice", "first in the drain order"
    wait_until(partial(used_is, stack, "alice", 0.85), 10, "alice's windows recorded")
    alice = account_view(stack, "alice")
    windows = {w["name"]: w for w in alice["windows"]}
    assert windows["five_hour"]["utilization"] == 0.85
    reset_s = stack.upstream.usage["token-alice"].five_hour_reset_s
    assert windows["five_hour"]["resets_at"] == int(reset_s)
    assert windows["seven_day"]["status"] == "allowed"
    assert alice["priority"] == 1

    assert chat.turn() == "alice", "under the threshold: the conversation stays"
    wait_until(partial(used_is, stack, "alice", 0.95), 10, "alice past the threshold")
    assert chat.turn() == "bob", "past it: one hop"
    assert chat.turn() == "bob", "and it sticks"
    assert Conversation(stack, sdk_clients, "Something new.").turn() == "bob"
    assert stack.upstream.rejections == 0

    metrics = loopback.get(f"{stack.url}/metrics", timeout=5).text
    assert re.search(
        r'ccfleet_account_utilization\{account="alice",window="five_hour"\} 0\.95', metrics
    )


def test_a_silent_upstream_is_abandoned_after_the_first_byte_timeout_and_another_account_answers(
    make_stack: StackFactory, sdk_clients: SdkClients
) -> None:
    """alice's upstream first streams slowly (kept: it had sent a byte), then says nothing at
    all: after CCFLEET_FIRST_BYTE_TIMEOUT_S the attempt is abandoned, bob answers, and alice
    shows as slow and gets no new conversation."""
    quick = {**FILL_FIRST, "CCFLEET_FIRST_BYTE_TIMEOUT_S": "2"}
    stack = accounts_stack(
        make_stack,
        ("alice", {**quick, "CCFLEET_ACCOUNT_PRIORITY": "1"}),
        ("bob", {**quick, "CCFLEET_ACCOUNT_PRIORITY": "2"}),
    )
    alice_replies: list[Reply] = [
        HangReply(seconds=4, text="From alice."),  # message_start at once, the rest in 4 s
        DelayedReply(seconds=60, then=TextReply("Too late.")),  # nothing for a minute
    ]

    def answer(request: RecordedRequest) -> Reply:
        if token_of(request) == "token-alice":
            return alice_replies.pop(0)
        return naming_the_account(request)

    stack.upstream.set_responder(answer)
    assert Conversation(stack, sdk_clients, "Slow but sure.").turn() == "alice"
    assert [token_of(r) for r in stack.upstream.requests] == ["token-alice"]
    assert account_view(stack, "alice")["slow"] is False
    # The client has its answer before alice's worker has ended the job. Under load, a new
    # conversation sent in that moment (alice still counting the job busy) was named bob and
    # never tried alice, 1 run in 9: what follows needs alice idle.
    wait_until(lambda: account_view(stack, "alice")["busy"] == 0, 10, "alice's slot free")

    assert Conversation(stack, sdk_clients, "Anyone there?").turn() == "bob"
    tokens = [token_of(r) for r in stack.upstream.requests]
    assert tokens == ["token-alice", "token-alice", "token-bob"]
    alice = account_view(stack, "alice")
    assert (alice["slow"], alice["first_byte_timeouts"]) == (True, 1)
    assert Conversation(stack, sdk_clients, "And now?").turn() == "bob"


async def record_usage(redis_url: str, name: str, utilization: float) -> None:
    """`name`'s 5-hour window as its workers record it from a rate_limit_event."""
    redis = Redis.from_url(redis_url)
    window = UsageWindow(
        name="five_hour", utilization=utilization, resets_at=time.time() + 3600, status="allowed"
    )
    await record_windows(redis, name, [window])
    await redis.aclose()


def test_a_job_refused_for_an_account_limit_runs_once_more_on_the_account_with_most_room(
    make_stack: StackFactory, sdk_clients: SdkClients, tmp_path: Path
) -> None:
    """alice (first in the drain order) is at her limit: the upstream refuses her request with
    429 and the unified `rejected` headers. She cools, and the job runs again on carol, who has
    room, rather than on bob, who is past the threshold and would take it first (carol reads
    the queue only every 3 s). The fake CLI asks the fake upstream and prints what the real
    CLI prints for it (a rate_limit_event, an error result)."""
    claude = str(fake_cli.install(tmp_path / "claude-upstream", FAKE_CLI_MODE="upstream"))
    common = {**FILL_FIRST, "CCFLEET_CLAUDE_BIN": claude, "CCFLEET_AFFINITY_WAIT_MS": "6000"}
    stack = accounts_stack(
        make_stack,
        ("alice", {**common, "CCFLEET_ACCOUNT_PRIORITY": "1"}),
        ("bob", {**common, "CCFLEET_ACCOUNT_PRIORITY": "2"}),
        ("carol", {**common, **SLOW_TO_PICK_UP, "CCFLEET_ACCOUNT_PRIORITY": "3"}),
    )
    stack.upstream.usage["token-alice"] = AccountUsage(five_hour=1.0)
    stack.upstream.set_responder(naming_the_account)
    asyncio.run(record_usage(stack.redis.url, "bob", 0.95))

    assert Conversation(stack, sdk_clients, "Who has room?").turn() == "carol"
    assert [token_of(r) for r in stack.upstream.requests] == ["token-alice", "token-carol"]
    assert stack.upstream.rejections == 1
    assert account(stack, "alice")["cooling"] is True


def test_a_job_refused_by_a_second_account_too_goes_on_to_one_with_room_never_back(
    make_stack: StackFactory, sdk_clients: SdkClients, tmp_path: Path
) -> None:
    """alice and then bob (first and second in the drain order) are both at
    their limits. The job hops from alice to bob and, refused again, to carol, who has room
    (the decision: one hop per account refusing it, up to CCFLEET_JOB_MAX_ATTEMPTS, so the
    client sees no rejection while an account has room). Neither refusing account is asked
    twice: each cools until its reset, and the next request goes to carol at once."""
    claude = str(fake_cli.install(tmp_path / "claude-upstream", FAKE_CLI_MODE="upstream"))
    common = {**FILL_FIRST, "CCFLEET_CLAUDE_BIN": claude, "CCFLEET_AFFINITY_WAIT_MS": "6000"}
    stack = accounts_stack(
        make_stack,
        *((name, {**common, "CCFLEET_ACCOUNT_PRIORITY": str(n)})
          for n, name in enumerate(["alice", "bob", "carol"], start=1)),
    )  # fmt: skip
    for name in ("alice", "bob"):
        stack.upstream.usage[f"token-{name}"] = AccountUsage(five_hour=1.0)
    stack.upstream.set_responder(naming_the_account)

    assert Conversation(stack, sdk_clients, "Who has room?").turn() == "carol"
    tokens = [token_of(r) for r in stack.upstream.requests]
    assert tokens == ["token-alice", "token-bob", "token-carol"]
    assert stack.upstream.rejections == 2
    assert account(stack, "alice")["cooling"] is True
    assert account(stack, "bob")["cooling"] is True

    assert Conversation(stack, sdk_clients, "And now?").turn() == "carol"
    assert [token_of(r) for r in stack.upstream.requests][3:] == ["token-carol"]


def test_a_worker_shows_a_slot_busy_as_soon_as_it_takes_a_job_and_free_as_soon_as_it_ends(
    make_stack: StackFactory,
) -> None:
    """most-headroom counts each account's busy slots (the conversations of those jobs stay on
    it), so a worker's heartbeat says at once when it takes a job and when it ends one, not
    only every CCFLEET_HEARTBEAT_INTERVAL_S (a minute here)."""
    once_a_minute = {"CCFLEET_HEARTBEAT_INTERVAL_S": "60", "CCFLEET_HEARTBEAT_TTL_S": "180"}
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_HEARTBEAT_TTL_S="180")
    stack.add_worker(
        CCFLEET_ACCOUNT="alice", CLAUDE_CODE_OAUTH_TOKEN="token-alice", **once_a_minute
    )
    stack.wait_ready()
    release = threading.Event()
    stack.upstream.set_responder(lambda request: HangReply(until=release))
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Hi."}]}
    client = threading.Thread(
        target=lambda: loopback.post(f"{stack.url}/v1/messages", json=body, timeout=60)
    )
    client.start()
    try:
        wait_until(lambda: account(stack, "alice")["busy"] == 1, 20, "the slot shown busy")
    finally:
        release.set()
        client.join()
    wait_until(lambda: account(stack, "alice")["busy"] == 0, 20, "the slot shown free")
