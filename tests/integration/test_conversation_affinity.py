"""Turns of one conversation go to the account that served its first turn while that account
has room (its upstream prompt cache is there), and to another account when it cools.

Two workers, alice and bob, run the zero-cost fake CLI: which account served a turn is read from
the job's record (the worker that started it) and the fleet's heartbeats.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from shared.fleet.registry import set_account_cooling
from tests.conftest import Stack, StackFactory
from tests.conversations import account_of, conversation, fleet, responses_turn, turn
from tests.fakes import fake_cli
from tests.processes import wait_until

# Generous, so a loaded test machine cannot turn a head start into a coin toss.
AFFINITY = {"CCFLEET_AFFINITY_WAIT_MS": "5000"}
HELLO = {"role": "assistant", "content": "Hello"}


@pytest.fixture
def fake_claude(tmp_path: Path) -> str:
    return str(fake_cli.install(tmp_path / "fake-claude"))


@pytest.fixture
def two_accounts(make_stack: StackFactory, fake_claude: str) -> Stack:
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=fake_claude, **AFFINITY)
    for name in ("alice", "bob"):
        stack.add_worker(CCFLEET_ACCOUNT=name, CCFLEET_CLAUDE_BIN=fake_claude, **AFFINITY)
    stack.wait_ready()
    wait_until(lambda: len(fleet(stack)["workers"]) == 2, 20, "both workers beating")
    return stack


def account_turn(stack: Stack, messages: list[dict[str, Any]]) -> str:
    """Send one turn (streaming); the account that served it."""
    return account_of(stack, turn(stack, messages))


def session_turn(stack: Stack, text: str, cache_key: str) -> str:
    """Send one Responses turn naming its conversation; the account that served it."""
    return account_of(stack, responses_turn(stack, text, cache_key))


async def cool(redis_url: str, account: str) -> None:
    """As a worker does when its account reports a usage limit."""
    client = aredis.Redis.from_url(redis_url)
    try:
        await set_account_cooling(client, account, until_s=time.time() + 3600, reason="five_hour")
    finally:
        await client.aclose()


async def uncool(redis_url: str, account: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        await set_account_cooling(client, account, until_s=0, reason="")
    finally:
        await client.aclose()


def cooling(stack: Stack, account: str) -> bool:
    return any(a["name"] == account and a["cooling"] for a in fleet(stack)["accounts"])


def test_follow_up_turns_go_to_the_account_of_the_first_turn(two_accounts: Stack) -> None:
    first_accounts = []
    for n in range(6):
        turns = conversation(n, 3, HELLO)
        first = account_turn(two_accounts, turns[0])
        first_accounts.append(first)
        assert [account_turn(two_accounts, later) for later in turns[1:]] == [first, first]
    assert set(first_accounts) <= {"alice", "bob"}


def test_when_the_conversations_account_cools_its_next_turn_goes_elsewhere(
    two_accounts: Stack,
) -> None:
    turns = conversation(0, 2, HELLO)
    first = account_turn(two_accounts, turns[0])
    other = "bob" if first == "alice" else "alice"
    asyncio.run(cool(two_accounts.redis.url, first))
    wait_until(lambda: cooling(two_accounts, first), 10, "the account cooling")
    assert account_turn(two_accounts, turns[1]) == other


def test_a_prompt_cache_key_keeps_turns_with_other_first_messages_on_one_account(
    two_accounts: Stack,
) -> None:
    # Both accounts idle and unused: a new conversation goes to alice (least used, then by
    # name). So the first turn is sent while alice cools, to land on bob.
    asyncio.run(cool(two_accounts.redis.url, "alice"))
    wait_until(lambda: cooling(two_accounts, "alice"), 10, "alice cooling")
    assert session_turn(two_accounts, "Session one, first prompt.", "session-1") == "bob"
    asyncio.run(uncool(two_accounts.redis.url, "alice"))
    wait_until(
        lambda: (
            not cooling(two_accounts, "alice")
            and all(w["state"] == "ready" for w in fleet(two_accounts)["workers"])
        ),
        10,
        "alice ready again",
    )
    # Codex's turns share their prompt_cache_key, not always their first message.
    assert session_turn(two_accounts, "Session one, another prompt.", "session-1") == "bob"
    # Another key is another conversation, even with the very first message of session 1.
    assert session_turn(two_accounts, "Session one, first prompt.", "session-2") == "alice"
