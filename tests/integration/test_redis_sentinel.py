"""Redis Sentinel: every client (front ends, workers, the `ccfleet` command) finds the primary
through the sentinels, and the new one after a failover, with no restart of its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests.conftest import Stack, StackFactory
from tests.fakes import fake_cli
from tests.sentinel_group import MASTER, SentinelGroup
from tests.waiting import async_wait_until

BOUND_S = 60.0
UNUSED_URL = "redis://127.0.0.1:1/0"  # with sentinels, the URL's host is not used
LOOPS = 3
ANSWERED_AFTER = 2  # requests each loop sends after the failover, all to be answered


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    (tmp_path / "ha").mkdir()
    sentinels = SentinelGroup(tmp_path / "ha").start()
    try:
        yield sentinels
    finally:
        sentinels.stop()


@pytest.fixture
def redis_server(group: SentinelGroup) -> EmbeddedRedis:
    return group.primary()


def sentinel_env(group: SentinelGroup) -> dict[str, str]:
    return {
        "CCFLEET_REDIS_URL": UNUSED_URL,
        "CCFLEET_REDIS_SENTINELS": group.sentinels_setting,
        "CCFLEET_REDIS_SENTINEL_MASTER": MASTER,
    }


@dataclass
class Outcome:
    sent_at: float
    ended_at: float
    error: str = ""  # the Anthropic error's type and message; empty: answered whole


async def ask(client: httpx.AsyncClient, url: str, *, stream: bool) -> str:
    """'' if answered whole, else the error's type and message."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    try:
        reply = await client.post(f"{url}/v1/messages", json=body)
    except httpx.HTTPError as exc:
        return f"transport: {type(exc).__name__}"
    if reply.status_code != 200:
        error = reply.json()["error"]
        return f"{reply.status_code} {error['type']}: {error['message']}"
    if stream:
        if "event: error" in reply.text:
            return "event: error " + reply.text.split("event: error", 1)[1][:200]
        return "" if "event: message_stop" in reply.text else "stream cut"
    return "" if reply.json()["content"][0]["text"] == "x" * 5 else "wrong text"


async def keep_asking(
    stack: Stack, failed_over: asyncio.Event, outcomes: list[Outcome], index: int
) -> None:
    """Ask in turn (streamed, then not) until ANSWERED_AFTER requests sent after the
    failover were answered."""
    answered_after = 0
    async with httpx.AsyncClient(timeout=BOUND_S) as client:
        while answered_after < ANSWERED_AFTER:
            sent_at = time.monotonic()
            error = await ask(client, stack.url, stream=(len(outcomes) + index) % 2 == 0)
            outcomes.append(Outcome(sent_at, time.monotonic(), error))
            if failed_over.is_set() and not error:
                answered_after += 1


async def test_requests_keep_being_answered_after_a_sentinel_failover(
    make_stack: StackFactory, group: SentinelGroup, tmp_path: Path
) -> None:
    cli = fake_cli.install(
        tmp_path / "claude", FAKE_CLI_MODE="stream_forever", FAKE_CLI_DRIP_COUNT="5"
    )
    stack = make_stack(CCFLEET_CLAUDE_BIN=str(cli), **sentinel_env(group))
    failed_over = asyncio.Event()
    outcomes: list[Outcome] = []
    loops = [
        asyncio.create_task(keep_asking(stack, failed_over, outcomes, i)) for i in range(LOOPS)
    ]
    await async_wait_until(  # under load
        lambda: len([o for o in outcomes if not o.error]) >= 2 * LOOPS, BOUND_S, "answers"
    )
    killed_at = time.monotonic()
    old = await asyncio.to_thread(group.kill_primary)
    await asyncio.to_thread(group.wait_failover, old.port)
    promoted_s = time.monotonic() - killed_at
    failed_over.set()
    await asyncio.wait_for(asyncio.gather(*loops), BOUND_S)

    errors = [o.error for o in outcomes if o.error]
    recovered_s = min(o.ended_at for o in outcomes if o.sent_at > killed_at and not o.error)
    print(
        f"\nsentinel failover: promoted after {promoted_s:.1f} s; the first request sent after "
        f"the kill was answered {recovered_s - killed_at:.1f} s after it; "
        f"{len(errors)} of {len(outcomes)} requests failed: {errors}"
    )
    for loop in range(LOOPS):  # each loop's last requests, after the failover, were answered
        assert not outcomes[-1 - loop].error, (errors, stack.logs())
    for error in errors:  # a failure is a proper, retryable error, never a cut stream
        assert error.startswith(("529 overloaded_error", "event: error")), error


def test_the_ccfleet_command_finds_the_primary_through_the_sentinels(
    group: SentinelGroup, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CCFLEET_AUTH_SECRET": "0" * 64,
        **sentinel_env(group),
    }
    created = subprocess.run(
        [sys.executable, "-m", "ccfleet", "keys", "create", "sentinel-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
    )
    assert created.returncode == 0, created.stderr
    with redis.Redis(port=group.primary_port()) as primary:
        assert primary.hexists(redis_keys.client_key_names(), "sentinel-test")
