"""Turns of one conversation go to the account that served its first turn while that account
has room (its upstream prompt cache is there), and to another account when it cools.

Two workers, alice and bob, run the zero-cost fake CLI: which account served a turn is read from
the job's record (the worker that started it) and the fleet's heartbeats.
"""

from __future__ import annotations

import asyncio
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aredis

from shared.broker import redis_keys
from shared.fleet.registry import set_account_cooling
from tests.conftest import Stack, StackFactory
from tests.fakes import fake_cli
from tests.processes import wait_until

MODEL = "claude-sonnet-4-6"
# Generous, so a loaded test machine cannot turn a head start into a coin toss.
AFFINITY = {"CCFLEET_AFFINITY_WAIT_MS": "5000"}


@pytest.fixture
def fake_claude(tmp_path: Path) -> str:
    wrapper = tmp_path / "fake-claude"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{fake_cli.__file__}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@pytest.fixture
def two_accounts(make_stack: StackFactory, fake_claude: str) -> Stack:
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=fake_claude, **AFFINITY)
    for name in ("alice", "bob"):
        stack.add_worker(CCFLEET_ACCOUNT=name, CCFLEET_CLAUDE_BIN=fake_claude, **AFFINITY)
    stack.wait_ready()
    wait_until(lambda: len(fleet(stack)["workers"]) == 2, 20, "both workers beating")
    return stack


def fleet(stack: Stack) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{stack.url}/v1/fleet", timeout=5).json()
    return body


def turn(stack: Stack, messages: list[dict[str, Any]]) -> str:
    """Send one turn (streaming); the account that served it."""
    body = {"model": MODEL, "max_tokens": 50, "stream": True, "messages": messages}
    job_id = ""
    with httpx.stream("POST", f"{stack.url}/v1/messages", json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id:") and not job_id:
                job_id = line[3:].strip().rpartition(":")[0]
            if line.startswith("event: error"):
                raise AssertionError(f"the turn failed: {line}")
    return served_by(stack, job_id)


def served_by(stack: Stack, job_id: str) -> str:
    """The account of the worker that started `job_id`."""
    client = redis.Redis.from_url(stack.redis.url)
    try:
        worker: bytes | None = client.hget(redis_keys.job_record(job_id), "worker")  # type: ignore[assignment]  # redis-py 5 types replies as str, sync-or-async
    finally:
        client.close()
    assert worker, job_id
    accounts: dict[str, str] = {w["id"]: w["account"] for w in fleet(stack)["workers"]}
    return accounts[worker.decode()]


async def cool(redis_url: str, account: str) -> None:
    """As a worker does when its account reports a usage limit."""
    client = aredis.Redis.from_url(redis_url)
    try:
        await set_account_cooling(client, account, until_s=time.time() + 3600, reason="five_hour")
    finally:
        await client.aclose()


def conversation(n: int, turns: int) -> list[list[dict[str, Any]]]:
    """The message lists of a conversation's turns, each one turn longer than the last."""
    history: list[dict[str, Any]] = []
    sent = []
    for t in range(turns):
        history = [*history, {"role": "user", "content": f"Conversation {n}, turn {t}."}]
        sent.append(history)
        history = [*history, {"role": "assistant", "content": "Hello"}]
    return sent


def test_follow_up_turns_go_to_the_account_of_the_first_turn(two_accounts: Stack) -> None:
    first_accounts = []
    for n in range(6):
        turns = conversation(n, 3)
        first = turn(two_accounts, turns[0])
        first_accounts.append(first)
        assert [turn(two_accounts, later) for later in turns[1:]] == [first, first]
    assert set(first_accounts) <= {"alice", "bob"}


def test_when_the_conversations_account_cools_its_next_turn_goes_elsewhere(
    two_accounts: Stack,
) -> None:
    turns = conversation(0, 2)
    first = turn(two_accounts, turns[0])
    other = "bob" if first == "alice" else "alice"
    asyncio.run(cool(two_accounts.redis.url, first))
    wait_until(
        lambda: any(a["name"] == first and a["cooling"] for a in fleet(two_accounts)["accounts"]),
        10,
        "the account cooling",
    )
    assert turn(two_accounts, turns[1]) == other


def responses_turn(stack: Stack, text: str, cache_key: str) -> str:
    """Send one Responses turn (streaming) naming its conversation; the account that served it."""
    body = {
        "model": MODEL,
        "input": text,
        "stream": True,
        "store": False,
        "prompt_cache_key": cache_key,
    }
    job_id = ""
    with httpx.stream("POST", f"{stack.url}/v1/responses", json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id:") and not job_id:
                job_id = line[3:].strip().rpartition(":")[0]
            if line.startswith("event: response.failed"):
                raise AssertionError(f"the turn failed: {line}")
    return served_by(stack, job_id)


async def uncool(redis_url: str, account: str) -> None:
    client = aredis.Redis.from_url(redis_url)
    try:
        await set_account_cooling(client, account, until_s=0, reason="")
    finally:
        await client.aclose()


def cooling(stack: Stack, account: str) -> bool:
    return any(a["name"] == account and a["cooling"] for a in fleet(stack)["accounts"])


def test_a_prompt_cache_key_keeps_turns_with_other_first_messages_on_one_account(
    two_accounts: Stack,
) -> None:
    # Both accounts idle and unused: a new conversation goes to alice (least used, then by
    # name). So the first turn is sent while alice cools, to land on bob.
    asyncio.run(cool(two_accounts.redis.url, "alice"))
    wait_until(lambda: cooling(two_accounts, "alice"), 10, "alice cooling")
    assert responses_turn(two_accounts, "Session one, first prompt.", "session-1") == "bob"
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
    assert responses_turn(two_accounts, "Session one, another prompt.", "session-1") == "bob"
    # Another key is another conversation, even with the very first message of session 1.
    assert responses_turn(two_accounts, "Session one, first prompt.", "session-2") == "alice"
