"""A conversation's next turn goes to the worker whose resident CLI holds it, and continues
there; when that worker is gone, another worker replays the history.

Two workers of one account run the zero-cost fake CLI, which (FAKE_CLI_STAYS=1) answers every
turn written to it until its stdin closes, as the real CLI does. Which worker served a turn is
read from the job's record; hits and misses from /v1/fleet.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.broker import redis_keys
from tests.conftest import Stack, StackFactory
from tests.fakes import fake_cli
from tests.processes import wait_until

pytestmark = pytest.mark.xdist_group("resident-routing")

MODEL = "claude-sonnet-4-6"
# Generous, so a loaded test machine cannot turn a head start into a coin toss.
ENV = {
    "CCFLEET_AFFINITY_WAIT_MS": "5000",
    "CCFLEET_ACCOUNT": "alice",
    "CCFLEET_RESIDENT_MAX": "4",  # the stacks of tests keep none by default
}
HELLO = {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}


@pytest.fixture(scope="module")
def fake_claude(tmp_path_factory: pytest.TempPathFactory) -> str:
    wrapper = tmp_path_factory.mktemp("fake-cli") / "fake-claude"
    # Set here: a worker passes the CLI none of its own variables but ANTHROPIC_, CLAUDE_...
    wrapper.write_text(
        f"#!/bin/sh\nFAKE_CLI_STAYS=1 exec '{sys.executable}' '{fake_cli.__file__}' \"$@\"\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@pytest.fixture
def two_workers(make_stack: StackFactory, fake_claude: str) -> Stack:
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=fake_claude, **ENV)
    for _ in range(2):
        stack.add_worker(CCFLEET_CLAUDE_BIN=fake_claude, **ENV)
    stack.wait_ready()
    wait_until(lambda: len(workers(stack)) == 2, 20, "both workers beating")
    return stack


def workers(stack: Stack) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{stack.url}/v1/fleet", timeout=5).json()
    return {worker["id"]: worker for worker in body["workers"]}


def turn(stack: Stack, messages: list[dict[str, Any]]) -> str:
    """Send one turn (streaming); the id of the worker that served it."""
    body = {"model": MODEL, "max_tokens": 50, "stream": True, "messages": messages}
    job_id = ""
    with httpx.stream("POST", f"{stack.url}/v1/messages", json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id:") and not job_id:
                job_id = line[3:].strip().rpartition(":")[0]
            if line.startswith("event: error"):
                raise AssertionError(f"the turn failed: {line}")
    client = redis.Redis.from_url(stack.redis.url)
    try:
        worker: bytes | None = client.hget(redis_keys.job_record(job_id), "worker")  # type: ignore[assignment]  # redis-py 5 types replies as str, sync-or-async
    finally:
        client.close()
    assert worker, job_id
    return worker.decode()


def conversation(n: int, turns: int) -> list[list[dict[str, Any]]]:
    """The message lists of a conversation's turns, each one turn longer than the last."""
    history: list[dict[str, Any]] = []
    sent = []
    for t in range(turns):
        history = [*history, {"role": "user", "content": f"Conversation {n}, turn {t}."}]
        sent.append(history)
        history = [*history, HELLO]
    return sent


def test_follow_ups_continue_in_the_worker_holding_them_and_replay_elsewhere_once_it_is_gone(
    two_workers: Stack,
) -> None:
    holders = []
    for n in range(3):
        first, *later = conversation(n, 3)
        holder = turn(two_workers, first)
        holders.append(holder)
        assert [turn(two_workers, messages) for messages in later] == [holder, holder]
    wait_until(
        lambda: sum(w["resident_hits"] for w in workers(two_workers).values()) == 6,
        10,
        "6 resident hits in the heartbeats",
    )
    # Their memory is measured at the residents' own check, a few seconds apart.
    wait_until(
        lambda: all(workers(two_workers)[holder]["resident_bytes"] > 0 for holder in holders),
        20,
        "the resident CLIs' memory in the heartbeats",
    )

    first, second = conversation(9, 2)
    holder = turn(two_workers, first)
    gone = next(p for p in two_workers.workers if f"-{p.pid}-" in holder)
    gone.stop()  # drains and leaves the fleet
    wait_until(lambda: holder not in workers(two_workers), 30, "the holder leaving the fleet")
    [survivor] = workers(two_workers).values()
    misses = survivor["resident_misses"]
    assert turn(two_workers, second) == survivor["id"]
    wait_until(
        lambda: workers(two_workers)[survivor["id"]]["resident_misses"] == misses + 1,
        10,
        "the survivor replaying the turn",
    )


def test_a_turn_whose_resident_cli_died_between_turns_is_replayed_not_failed(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    # This fake CLI stays after its first answer and ends at the next turn's first line, as a
    # resident CLI killed or crashed between turns: only that turn finds it gone.
    dies = fake_cli.install(tmp_path / "claude", FAKE_CLI_STAYS="1", FAKE_CLI_TURNS="1")
    stack = make_stack(CCFLEET_CLAUDE_BIN=str(dies), **ENV)
    first, second = conversation(7, 2)
    holder = turn(stack, first)
    assert turn(stack, second) == holder  # answered (turn() fails on any error)
