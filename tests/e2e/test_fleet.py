"""The fleet seen from outside: GET /v1/fleet, `ccfleet status`, `ccfleet up --accounts`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from ccfleet.embedded_redis import free_port
from shared.fleet.registry import set_account_cooling
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.processes import ManagedProcess, wait_until

Fleet = dict[str, Any]
TTL = {"CCFLEET_HEARTBEAT_TTL_S": "3"}  # short, so a silent worker leaves quickly


def get_fleet(url: str) -> Fleet:
    response = loopback.get(f"{url}/v1/fleet", timeout=5)
    assert response.status_code == 200, response.text
    body: Fleet = response.json()
    return body


def wait_for_fleet(
    url: str, predicate: Callable[[Fleet], bool], what: str, timeout_s: float = 30
) -> Fleet:
    seen: list[Fleet] = []

    def matches() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            seen.append(get_fleet(url))
            return predicate(seen[-1])
        return False

    wait_until(matches, timeout_s, what)
    return seen[-1]


def accounts_of(body: Fleet) -> dict[str, str]:
    """Worker id -> account."""
    return {w["id"]: w["account"] for w in body["workers"]}


def cool_account(redis_url: str, account: str, *, until_s: float, reason: str) -> None:
    async def cool() -> None:
        redis = Redis.from_url(redis_url)
        try:
            await set_account_cooling(redis, account, until_s=until_s, reason=reason)
        finally:
            await redis.aclose()

    asyncio.run(cool())


def run_console(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m ccfleet ARGS` to its end (killed with its group after 60 s)."""
    with subprocess.Popen(
        [sys.executable, "-m", "ccfleet", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def console_env(redis_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
        "CCFLEET_REDIS_URL": redis_url,
    }


@pytest.fixture
def fleet_stack(make_stack: StackFactory) -> Stack:
    """A front end, a worker for account alice (2 slots) and one for bob (3 slots)."""
    stack = make_stack(workers=0, wait_ready=False, **TTL)
    stack.add_worker(CCFLEET_ACCOUNT="alice", **TTL)
    stack.add_worker(CCFLEET_ACCOUNT="bob", CCFLEET_WORKER_SLOTS="3", **TTL)
    stack.wait_ready()
    wait_for_fleet(stack.url, lambda body: len(body["workers"]) == 2, "both workers")
    return stack


def test_the_fleet_lists_each_worker_with_its_account_and_slots(fleet_stack: Stack) -> None:
    body = get_fleet(fleet_stack.url)
    workers = {w["account"]: w for w in body["workers"]}
    assert {name: w["slots"] for name, w in workers.items()} == {"alice": 2, "bob": 3}
    for worker in workers.values():
        assert (worker["state"], worker["busy"], worker["busy_batch"]) == ("ready", 0, 0)
        assert worker["cli_version"]
        assert worker["cli_vetted"] is True, "the pinned CLI is one the suite has passed"
        assert 0 < worker["started_at_ms"] <= worker["beat_at_ms"] <= body["at_ms"] + 1000
    assert [(a["name"], a["workers"], a["slots"], a["cooling"]) for a in body["accounts"]] == [
        ("alice", 1, 2, False),
        ("bob", 1, 3, False),
    ]
    assert {lane["name"]: lane["waiting"] for lane in body["lanes"]} == {
        "interactive": 0,
        "batch": 0,
    }
    assert body["totals"] == {
        "live_workers": 2,
        "slots": 5,
        "busy": 0,
        "free_slots": 5,
        "unvetted_cli_workers": 0,
    }


def test_a_worker_on_a_cli_version_the_suite_has_not_passed_is_flagged(
    fleet_stack: Stack, tmp_path: Path
) -> None:
    unvetted = tmp_path / "claude-9.9.9"
    unvetted.write_text('#!/bin/sh\necho "9.9.9 (Claude Code)"\n')
    unvetted.chmod(0o755)
    fleet_stack.add_worker(CCFLEET_ACCOUNT="carol", CCFLEET_CLAUDE_BIN=str(unvetted), **TTL)
    body = wait_for_fleet(fleet_stack.url, lambda b: len(b["workers"]) == 3, "carol's worker")
    vetted = {w["account"]: (w["cli_version"], w["cli_vetted"]) for w in body["workers"]}
    assert vetted["carol"] == ("9.9.9", False)
    assert vetted["alice"][1] is True
    assert body["totals"]["unvetted_cli_workers"] == 1

    result = run_console(["status"], console_env(fleet_stack.redis.url))
    assert result.returncode == 0, result.stderr
    assert "1 worker on a CLI version the test suite has not passed: 9.9.9" in result.stdout
    carol = [line for line in result.stdout.splitlines() if "│ carol " in line]
    assert "9.9.9 (not vetted)" in carol[0], result.stdout


def test_a_stopped_worker_leaves_the_fleet(fleet_stack: Stack) -> None:
    fleet_stack.workers[1].stop()
    body = wait_for_fleet(fleet_stack.url, lambda b: len(b["workers"]) == 1, "bob to leave")
    assert list(accounts_of(body).values()) == ["alice"]
    assert [a["name"] for a in body["accounts"]] == ["alice"]


def test_a_worker_that_stops_beating_leaves_within_the_heartbeat_ttl(fleet_stack: Stack) -> None:
    fleet_stack.workers[1].signal(signal.SIGKILL)  # no chance to unregister
    killed_at = time.monotonic()
    wait_for_fleet(fleet_stack.url, lambda b: len(b["workers"]) == 1, "bob to expire", 10)
    print(f"gone {time.monotonic() - killed_at:.1f}s after SIGKILL (TTL 3 s)")


def test_a_cooling_account_shows_as_cooling(fleet_stack: Stack) -> None:
    until_s = time.time() + 3600
    cool_account(fleet_stack.redis.url, "bob", until_s=until_s, reason="5-hour limit")
    body = get_fleet(fleet_stack.url)
    accounts = {a["name"]: a for a in body["accounts"]}
    assert accounts["bob"]["cooling"] is True
    assert accounts["bob"]["cooling_until"] == pytest.approx(until_s)
    assert accounts["bob"]["reason"] == "5-hour limit"
    assert (accounts["alice"]["cooling"], accounts["alice"]["cooling_until"]) == (False, 0)
    assert body["totals"]["free_slots"] == 2  # alice's only


def test_the_fleet_is_a_529_when_redis_is_down(fleet_stack: Stack) -> None:
    fleet_stack.redis.kill()
    response = loopback.get(f"{fleet_stack.url}/v1/fleet", timeout=30)
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"


def test_ccfleet_status_shows_both_accounts(fleet_stack: Stack) -> None:
    cool_account(fleet_stack.redis.url, "bob", until_s=time.time() + 7200, reason="weekly limit")
    result = run_console(["status"], console_env(fleet_stack.redis.url))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 live workers, 2 of 5 slots free" in out
    rows = [line for line in out.splitlines() if "│ bob " in line]
    assert rows, out
    assert any("cooling" in row and "(in 1h59m" in row for row in rows), out
    assert "weekly limit" in out
    assert "│ alice " in out
    assert "Lanes: interactive 0 waiting · batch 0 waiting" in out


def test_ccfleet_status_exits_1_when_redis_is_unreachable() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = run_console(["status"], console_env(url))
    assert result.returncode == 1
    assert "ccfleet status: cannot read the fleet from redis://:***@127.0.0.1:" in result.stderr
    assert "hunter2" not in result.stderr


def test_ccfleet_up_refuses_a_bad_accounts_file_before_starting_anything(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[[account]]\nname = "alice"\noauth_token = "sk-ant-oat01-x"\napi_key = "sk-ant-api03-y"\n'
    )
    env = console_env("")
    del env["CCFLEET_REDIS_URL"]  # a good file would start an embedded Redis first
    result = run_console(["up", "--accounts", str(accounts), "--port", str(free_port())], env)
    assert result.returncode == 2
    assert "account 'alice' needs exactly one of" in result.stderr
    assert "(found: oauth_token, api_key)" in result.stderr
    assert "sk-ant-" not in result.stderr
    assert "embedded redis" not in result.stdout


def test_ccfleet_up_starts_one_worker_per_account_and_stops_them_all(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    env_stack = make_stack(workers=0, apis=0, wait_ready=False)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[[account]]\nname = "alice"\noauth_token = "sk-ant-oat01-alice"\n\n'
        '[[account]]\nname = "bob"\noauth_token_env = "BOB_TOKEN"\nslots = 1\n'
    )
    port = free_port()
    env = env_stack.env(BOB_TOKEN="sk-ant-oat01-bob", ANTHROPIC_API_KEY="sk-ant-api03-shell")
    up = ManagedProcess(
        ["up", "--accounts", str(accounts), "--port", str(port)],
        env=env,
        log_path=tmp_path / "up.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        body = wait_for_fleet(url, lambda b: len(b["workers"]) == 2, "both workers", 60)
        assert {w["account"]: w["slots"] for w in body["workers"]} == {"alice": 2, "bob": 1}
        workers = worker_environments(up.pid)
        assert {e["CCFLEET_ACCOUNT"]: e["CLAUDE_CODE_OAUTH_TOKEN"] for e in workers} == {
            "alice": "sk-ant-oat01-alice",
            "bob": "sk-ant-oat01-bob",
        }
        assert not any("ANTHROPIC_API_KEY" in e for e in workers)
        assert not any("BOB_TOKEN" in e for e in workers), "no account's source variable"
        assert_stops_with_all_its_children(up)
    finally:
        up.stop()


def test_ccfleet_up_without_accounts_runs_one_worker_and_its_own_redis(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    env = make_stack(workers=0, apis=0, wait_ready=False).env()
    del env["CCFLEET_REDIS_URL"]
    port = free_port()
    up = ManagedProcess(["up", "--port", str(port)], env=env, log_path=tmp_path / "up.log")
    try:
        url = f"http://127.0.0.1:{port}"
        body = wait_for_fleet(url, lambda b: len(b["workers"]) == 1, "the worker", 60)
        assert (body["workers"][0]["account"], body["workers"][0]["slots"]) == ("default", 2)
        assert "embedded redis on 127.0.0.1:" in up.log_text()
        assert_stops_with_all_its_children(up)
    finally:
        up.stop()


def assert_stops_with_all_its_children(up: ManagedProcess) -> None:
    descendants = descendants_of(up.pid)
    assert len(descendants) >= 2  # at least a worker and a front end
    up.signal(signal.SIGTERM)
    assert up.proc.wait(timeout=30) == 0, up.log_text()[-3000:]
    assert [pid for pid in descendants if alive(pid)] == []
    assert in_process_group(up.pid) == []


def children_of(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def descendants_of(pid: int) -> list[int]:
    found, pending = [], children_of(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children_of(child))
    return found


def worker_environments(up_pid: int) -> list[dict[str, str]]:
    """The environments of `up`'s `worker` children."""
    envs = []
    for pid in children_of(up_pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"worker" in argv:
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            envs.append(dict(item.decode().split("=", 1) for item in raw if b"=" in item))
    return envs


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def in_process_group(pgid: int) -> list[int]:
    """Pids (zombies included) whose process group is `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.append(int(entry.name))
    return pids
