"""The CLI subprocess: its kill path, its process group, its reaping, its line reading; and
`answer_with_cli` facing a CLI that fails in ways the real one cannot be made to on demand.

The CLI here is tests/fakes/fake_cli.py, run with this interpreter.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from shared.broker import redis_keys
from shared.errors import CliFailed, JobTimedOut, Overloaded, RateLimited
from shared.stream import journal, live_message
from shared.stream.chunk import Chunk
from shared.wire.messages import MessagesRequest
from tests.fakes import fake_cli
from tests.fakes.fake_cli import hello_answer, stream_event
from tests.records import running_attempt
from tests.waiting import async_wait_until
from worker.cli.config import CliConfig
from worker.cli.process import CliProcess
from worker.reply.answer import answer_with_cli
from worker.reply.chunk_publisher import ChunkPublisher

FAKE_CLI = Path(fake_cli.__file__)
BOUND_S = 20.0  # generous limit for what takes well under a second when it works


def fake_argv() -> list[str]:
    return [sys.executable, str(FAKE_CLI)]


def fake_env(mode: str, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FAKE_CLI_MODE": mode, **extra}


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait a moment for init to reap it)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat_line.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def was_reaped(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def wait_until_gone(pid: int) -> None:
    await async_wait_until(lambda: not is_running(pid), BOUND_S, f"process {pid} to be gone")


async def next_message(process: CliProcess) -> dict[str, Any]:
    async with asyncio.timeout(BOUND_S):
        message = await process.read_message()
    assert message is not None
    return message


async def test_stopping_a_cli_ends_it_with_sigterm_and_reaps_it(tmp_path: Path) -> None:
    async with asyncio.timeout(BOUND_S):
        async with CliProcess(
            fake_argv(), env=fake_env("sleep"), cwd=str(tmp_path), kill_grace_s=5.0
        ) as process:
            assert (await next_message(process))["pid"] == process.pid
            assert await process.wait_exit(0.1) is None  # still running
    assert process.returncode == -signal.SIGTERM
    assert was_reaped(process.pid)


async def test_a_cli_ignoring_sigterm_is_killed_after_the_grace_period_and_reaped(
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(BOUND_S):
        async with CliProcess(
            fake_argv(), env=fake_env("ignore_sigterm"), cwd=str(tmp_path), kill_grace_s=0.3
        ) as process:
            await next_message(process)  # SIGTERM is ignored from here on
    assert process.returncode == -signal.SIGKILL
    assert was_reaped(process.pid)


async def test_a_grandchild_in_the_cli_process_group_is_killed_with_it(tmp_path: Path) -> None:
    async with asyncio.timeout(BOUND_S):
        async with CliProcess(
            fake_argv(), env=fake_env("spawn_child"), cwd=str(tmp_path), kill_grace_s=0.3
        ) as process:
            child_pid = (await next_message(process))["child_pid"]
            assert is_running(child_pid)
    assert was_reaped(process.pid)
    await wait_until_gone(child_pid)


@pytest.mark.parametrize("mode", ["spawn_child", "ignore_sigterm"])
async def test_cancelling_the_task_running_the_cli_leaves_no_process_behind(
    tmp_path: Path, mode: str
) -> None:
    started = asyncio.Event()
    pids: list[int] = []

    async def run() -> None:
        async with CliProcess(
            fake_argv(), env=fake_env(mode), cwd=str(tmp_path), kill_grace_s=0.3
        ) as process:
            first = await next_message(process)
            pids.extend([process.pid, *([first["child_pid"]] if "child_pid" in first else [])])
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(run())
    async with asyncio.timeout(BOUND_S):
        await started.wait()
    assert all(is_running(pid) for pid in pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(BOUND_S):
            await task
    cli_pid, *grandchildren = pids
    assert was_reaped(cli_pid)
    for pid in grandchildren:
        await wait_until_gone(pid)


async def test_cancelling_twice_still_ends_the_task_only_after_the_cli_is_gone(
    tmp_path: Path,
) -> None:
    started = asyncio.Event()
    pids: list[int] = []
    signals = tmp_path / "signals"
    env = fake_env("ignore_sigterm", FAKE_CLI_SIGNAL_FILE=str(signals))

    async def run() -> None:
        async with CliProcess(fake_argv(), env=env, cwd=str(tmp_path), kill_grace_s=1.0) as process:
            await next_message(process)
            pids.append(process.pid)
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(run())
    async with asyncio.timeout(BOUND_S):
        await started.wait()
    task.cancel()
    await async_wait_until(
        lambda: signals.exists() and "SIGTERM" in signals.read_text(), BOUND_S, "the SIGTERM"
    )
    task.cancel()  # in the SIGTERM grace period, e.g. an arq abort arriving during a timeout
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(BOUND_S):
            await task
    alive = is_running(pids[0])
    await wait_until_gone(pids[0])  # leave nothing behind whatever the outcome
    assert not alive


async def test_a_line_longer_than_a_megabyte_is_read_whole(tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    env = fake_env("long_line", FAKE_CLI_LINE_BYTES=str(size))
    async with asyncio.timeout(BOUND_S):
        async with CliProcess(fake_argv(), env=env, cwd=str(tmp_path), kill_grace_s=1) as process:
            long = await next_message(process)
            assert long["type"] == "stream_event"
            assert long["event"]["delta"]["text"] == "x" * size
            assert (await next_message(process))["type"] == "result"
            assert await process.read_message() is None
            assert await process.wait_exit(BOUND_S) == 0


async def test_what_the_cli_says_on_stderr_is_kept(tmp_path: Path) -> None:
    env = fake_env("no-such-mode")
    async with asyncio.timeout(BOUND_S):
        async with CliProcess(fake_argv(), env=env, cwd=str(tmp_path), kill_grace_s=1) as process:
            assert await process.read_message() is None
            assert await process.wait_exit(BOUND_S) == 2
    assert "fake_cli: unknown FAKE_CLI_MODE 'no-such-mode'" in process.stderr_tail


# --- answer_with_cli with the fake CLI ---------------------------------------------------------

REQUEST = MessagesRequest.model_validate(
    {
        "model": "claude-sonnet-5-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
)
MESSAGE_START: dict[str, Any] = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    },
}
PARTIAL: list[dict[str, Any]] = [
    MESSAGE_START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Part"}},
]
# What the real CLI prints after an upstream error mid-stream: it closes the message itself.
MADE_UP_CLOSING: list[dict[str, Any]] = [
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": None, "stop_sequence": None},
        "usage": {"output_tokens": 0},
    },
    {"type": "message_stop"},
]


def synthetic_assistant(error: str, error_type: str, status: int, text: str) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {
            "role": "assistant",
            "model": "<synthetic>",
            "content": [{"type": "text", "text": text}],
        },
        "error": error,
        "is_api_error_message": True,
        "api_error_status": status,
        "api_error_type": error_type,
    }


def error_result(text: str, status: int | None, error_type: str | None) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "terminal_reason": "api_error",
        "api_error_status": status,
        "api_error_type": error_type,
        "result": text,
    }


CliSetup = Callable[..., CliConfig]


@pytest.fixture
def fake_claude(tmp_path: Path) -> CliSetup:
    """`fake_claude(output=[...lines], **env)`: a CliConfig running the fake as `claude`."""
    wrapper = tmp_path / "claude"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{FAKE_CLI}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "work").mkdir()

    def configure(
        output: list[dict[str, Any]] | None = None, *, timeout_s: float = BOUND_S, **env: str
    ) -> CliConfig:
        if output is not None:
            script = tmp_path / "output.jsonl"
            script.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in output))
            env["FAKE_CLI_OUTPUT"] = str(script)
        return CliConfig(
            claude_bin=str(wrapper),
            base_env=fake_env(env.pop("FAKE_CLI_MODE", "answer"), **env),
            work_root=str(tmp_path / "work"),
            timeout_s=timeout_s,
            kill_grace_s=0.3,
        )

    return configure


@pytest.fixture
async def publisher(redis: Redis) -> ChunkPublisher:
    await running_attempt(redis, "job_fake_cli")
    return ChunkPublisher(redis, "job_fake_cli", attempt=1, ttl_s=600, max_chunks=10_000)


async def journal_events(redis: Redis) -> list[dict[str, Any]]:
    chunks = [Chunk.from_json(raw) for raw in await journal.read_after(redis, "job_fake_cli")]
    assert all(chunk.kind == "event" for chunk in chunks)
    return [chunk.data for chunk in chunks]


async def answer(
    config: CliConfig, publisher: ChunkPublisher, request: MessagesRequest = REQUEST
) -> None:
    async with asyncio.timeout(BOUND_S * 2):
        await answer_with_cli(request, "job_fake_cli", publisher, config)


async def test_a_complete_answer_is_published_through_message_stop(
    fake_claude: CliSetup, publisher: ChunkPublisher, redis: Redis
) -> None:
    await answer(fake_claude(), publisher)
    expected = [line["event"] for line in hello_answer() if line["type"] == "stream_event"]
    assert await journal_events(redis) == expected
    assert publisher.ended


async def test_the_closing_events_held_until_the_result_go_live_in_one_message(
    fake_claude: CliSetup, publisher: ChunkPublisher, redis: Redis
) -> None:
    """Each front end relaying the answer wakes once for its end, not once an event."""
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(redis_keys.job_channel("job_fake_cli"))
        await answer(fake_claude(), publisher)
        messages = await live_messages(pubsub)
    last = [chunk.event for chunk in live_message.decode(messages[-1])]
    assert last == ["content_block_stop", "message_delta", "message_stop"]
    assert len(messages) == len(await journal_events(redis)) - 2


async def live_messages(pubsub: PubSub) -> list[bytes]:
    """What the channel got, through the message carrying the answer's last chunk."""
    messages: list[bytes] = []
    async with asyncio.timeout(BOUND_S):
        while not messages or not live_message.decode(messages[-1])[-1].is_terminal:
            if (message := await pubsub.get_message(timeout=1.0)) is not None:
                messages.append(message["data"])
    return messages


async def test_the_history_is_replayed_and_acknowledged_before_the_answer(
    fake_claude: CliSetup, publisher: ChunkPublisher, redis: Redis
) -> None:
    request = MessagesRequest.model_validate(
        {
            "model": "claude-sonnet-5-5",
            "max_tokens": 50,
            "messages": [
                {"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Tell me more."},
                {"role": "user", "content": "Please."},
            ],
        }
    )
    await answer(fake_claude(), publisher, request)
    assert (await journal_events(redis))[-1] == {"type": "message_stop"}


@pytest.mark.parametrize(
    "printed", [PARTIAL, PARTIAL + MADE_UP_CLOSING], ids=["mid-block", "after-closing-events"]
)
async def test_a_cli_exiting_without_a_result_fails_and_publishes_no_message_stop(
    fake_claude: CliSetup, publisher: ChunkPublisher, redis: Redis, printed: list[dict[str, Any]]
) -> None:
    config = fake_claude([stream_event(event) for event in printed], FAKE_CLI_EXIT_CODE="3")
    with pytest.raises(CliFailed) as caught:
        await answer(config, publisher)
    assert caught.value.message == "The Claude Code CLI exited (code 3) before answering."
    events = await journal_events(redis)
    assert events[:3] == PARTIAL
    assert {"type": "message_stop"} not in events
    assert not any(event["type"] == "message_delta" for event in events)
    assert not publisher.ended


async def test_an_error_result_after_made_up_closing_events_raises_and_keeps_them_out(
    fake_claude: CliSetup, publisher: ChunkPublisher, redis: Redis
) -> None:
    # As printed by the real CLI when the upstream sends `event: error` mid-stream.
    printed = [
        *(stream_event(event) for event in PARTIAL),
        synthetic_assistant("unknown", "overloaded_error", 529, "API Error: Overloaded"),
        *(stream_event(event) for event in MADE_UP_CLOSING),
        error_result("API Error: Overloaded", 529, "overloaded_error"),
    ]
    with pytest.raises(Overloaded) as caught:
        await answer(fake_claude(printed, FAKE_CLI_EXIT_CODE="1"), publisher)
    assert caught.value.message == "Overloaded"
    event_types = [event["type"] for event in await journal_events(redis)]
    assert "message_delta" not in event_types
    assert "message_stop" not in event_types
    assert event_types[:3] == [event["type"] for event in PARTIAL]
    assert not publisher.ended


async def test_a_rejected_account_limit_raises_rate_limited_with_its_reset_time(
    fake_claude: CliSetup, publisher: ChunkPublisher, redis: Redis
) -> None:
    resets_at = int(time.time()) + 3600
    printed = [
        {
            "type": "rate_limit_event",
            "rate_limit_info": {
                "status": "rejected",
                "resetsAt": resets_at,
                "rateLimitType": "five_hour",
            },
        },
        synthetic_assistant("rate_limit", "rate_limit_error", 429, "API Error: rejected"),
        error_result("API Error: Request rejected (429) · Usage limit reached", 429, None),
    ]
    with pytest.raises(RateLimited) as caught:
        await answer(fake_claude(printed, FAKE_CLI_EXIT_CODE="1"), publisher)
    assert caught.value.message == "Usage limit reached"
    assert caught.value.retry_after_s is not None
    assert 3500 < caught.value.retry_after_s <= 3600
    assert await journal_events(redis) == []


async def test_a_successful_result_without_a_message_stop_is_a_failure(
    fake_claude: CliSetup, publisher: ChunkPublisher
) -> None:
    printed = [
        *(stream_event(event) for event in PARTIAL),
        {"type": "result", "subtype": "success", "is_error": False, "result": "Part"},
    ]
    with pytest.raises(CliFailed) as caught:
        await answer(fake_claude(printed), publisher)
    assert caught.value.message == "The Claude Code CLI finished without a complete answer."


async def test_a_cli_that_never_answers_is_killed_at_the_job_timeout(
    fake_claude: CliSetup, publisher: ChunkPublisher, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pid"
    config = fake_claude(
        timeout_s=1.0, FAKE_CLI_MODE="ignore_sigterm", FAKE_CLI_PID_FILE=str(pid_file)
    )
    with pytest.raises(JobTimedOut):
        await answer(config, publisher)
    assert was_reaped(int(pid_file.read_text()))
    assert list((tmp_path / "work").iterdir()) == []  # the job workspace is gone too


async def test_a_line_written_after_the_clis_stdin_closed_is_a_cli_failure(
    tmp_path: Path,
) -> None:
    """A CLI kept between turns may have gone by the next turn: writing to it must fail as the
    CLI failing (so the turn is replayed elsewhere), never as an unexpected error."""
    async with asyncio.timeout(BOUND_S):
        async with CliProcess(
            fake_argv(), env=fake_env("sleep"), cwd=str(tmp_path), kill_grace_s=0.3
        ) as process:
            await next_message(process)
            process.close_stdin()
            with pytest.raises(CliFailed, match="exited before reading"):
                await process.write_line(b"{}\n")
