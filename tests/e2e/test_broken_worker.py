"""A worker that cannot serve says so: it beats as `broken` with the reason and takes no jobs;
`/ready` is 503 naming it; requests fail at once with 529 naming it; `ccfleet up` prints the
reason and the fix. No CLI runs here: the CLI is missing, or the fake one says it is logged out.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccfleet.embedded_redis import free_port
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.e2e.test_fleet import console_env, run_console, wait_for_fleet
from tests.fakes import fake_cli
from tests.processes import http_ok, wait_until

REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "Say hello."}],
}
NOT_LOGGED_IN = "The Claude Code CLI is not logged in."


def missing_cli(tmp_path: Path) -> tuple[str, str]:
    """A CLI path that does not exist, and the reason a worker gives for it."""
    path = str(tmp_path / "no-such-claude")
    return path, f"The Claude Code CLI {path} cannot start: No such file or directory."


def broken_stack(make_stack: StackFactory, **env: str) -> Stack:
    stack = make_stack(workers=0, wait_ready=False, **env)
    stack.add_worker(**env)
    wait_for_fleet(stack.url, lambda b: len(b["workers"]) == 1, "the worker beating")
    return stack


def only_worker(stack: Stack) -> dict[str, Any]:
    worker: dict[str, Any] = loopback.get(f"{stack.url}/v1/fleet", timeout=5).json()["workers"][0]
    return worker


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_with_no_worker_able_to_serve_a_request_fails_at_once_naming_the_reason(
    make_stack: StackFactory, tmp_path: Path, stream: bool
) -> None:
    path, reason = missing_cli(tmp_path)
    stack = broken_stack(make_stack, CCFLEET_CLAUDE_BIN=path)
    started = time.monotonic()
    response = loopback.post(
        f"{stack.url}/v1/messages", json={**REQUEST, "stream": stream}, timeout=30
    )
    assert time.monotonic() - started < 5
    assert response.status_code == 529
    error = response.json()["error"]
    assert error["type"] == "overloaded_error"
    assert reason in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert stack.upstream.requests == []


def test_a_broken_worker_beats_as_broken_and_ready_is_503_naming_why(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    path, reason = missing_cli(tmp_path)
    stack = broken_stack(make_stack, CCFLEET_CLAUDE_BIN=path)
    worker = only_worker(stack)
    assert (worker["state"], worker["broken_reason"], worker["cli_version"]) == (
        "broken",
        reason,
        "",
    )
    ready = loopback.get(f"{stack.url}/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["status"] == "no worker can serve"
    assert reason in ready.json()["reason"]
    status = run_console(["status"], {**console_env(stack.redis.url), "COLUMNS": "400"})
    assert status.returncode == 0, status.stderr
    assert "broken" in status.stdout
    assert reason in " ".join(status.stdout.split())


def test_a_waiting_job_fails_when_the_only_worker_turns_out_broken(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    path, reason = missing_cli(tmp_path)
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    replies: dict[str, httpx.Response] = {}

    def send() -> None:
        replies["job"] = loopback.post(f"{stack.url}/v1/messages", json=REQUEST, timeout=60)

    sender = threading.Thread(target=send)
    sender.start()
    wait_for_fleet(stack.url, lambda b: b["lanes"][0]["waiting"] == 1, "the job waiting")
    stack.add_worker(CCFLEET_CLAUDE_BIN=path)
    sender.join(30)
    assert replies["job"].status_code == 529
    assert reason in replies["job"].json()["error"]["message"]


def test_a_worker_rechecks_its_cli_and_serves_once_it_is_logged_in(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    claude = fake_cli.write_executable(tmp_path, logged_in=False)
    stack = broken_stack(
        make_stack, CCFLEET_CLAUDE_BIN=str(claude), CCFLEET_CLI_CHECK_INTERVAL_S="0.5"
    )
    worker = only_worker(stack)
    assert (worker["state"], worker["broken_reason"]) == ("broken", NOT_LOGGED_IN)
    assert worker["cli_version"] == fake_cli.VERSION

    fake_cli.write_executable(tmp_path, logged_in=True)
    wait_for_fleet(stack.url, lambda b: b["workers"][0]["state"] == "ready", "a passing check")
    assert loopback.get(f"{stack.url}/ready", timeout=5).status_code == 200
    response = loopback.post(f"{stack.url}/v1/messages", json=REQUEST, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Hello"

    fake_cli.write_executable(tmp_path, logged_in=False)
    wait_for_fleet(stack.url, lambda b: b["workers"][0]["state"] == "broken", "a failing check")


@pytest.mark.parametrize("cli", ["missing", "logged-out"])
def test_ccfleet_up_prints_why_its_only_worker_cannot_serve_and_the_fix_and_exits_1(
    tmp_path: Path, cli: str
) -> None:
    env = console_env("")
    del env["CCFLEET_REDIS_URL"]
    if cli == "missing":
        env["CCFLEET_CLAUDE_BIN"], reason = missing_cli(tmp_path)
        fixes = ["npm install -g @anthropic-ai/claude-code@", "CCFLEET_CLAUDE_BIN"]
    else:
        env["CCFLEET_CLAUDE_BIN"] = str(fake_cli.write_executable(tmp_path, logged_in=False))
        reason, fixes = NOT_LOGGED_IN, ["claude /login", "claude setup-token"]
    result = run_console(["up", "--port", str(free_port())], env)
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert reason in said
    for fix in fixes:
        assert fix in said
    assert "embedded redis" not in result.stdout, "nothing was started"


def test_a_cli_gone_between_checks_makes_its_worker_broken_not_a_500(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    claude = fake_cli.write_executable(tmp_path)
    stack = broken_stack(make_stack, CCFLEET_CLAUDE_BIN=str(claude))  # checks every 300 s
    assert only_worker(stack)["state"] == "ready"
    claude.unlink()
    started = time.monotonic()
    response = loopback.post(f"{stack.url}/v1/messages", json=REQUEST, timeout=30)
    assert time.monotonic() - started < 5
    assert response.status_code == 529, response.text
    assert f"{claude} cannot start" in response.json()["error"]["message"]
    assert only_worker(stack)["state"] == "broken"
