"""Resident conversations with the real CLI against the fake upstream: the next turn continues
in the CLI that answered the last one, and the model sees the request a replay would send.

Each fidelity case answers turn N (history with thinking signatures and a client tool round
trip) with residents on, then turn N+1 twice: resident (only the new messages go in) and
replayed in a fresh CLI. The fake upstream records both requests. With an API key (bare) the
CLI adds nothing of its own and the two must be equal in every field but `metadata`, which
names the CLI's session. With a subscription login the CLI adds reminders (environment,
date) to user messages; their place differs (docs/measured-facts.md "Long conversations"),
so there the requests must be equal once those are taken out.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.errors import FleetError
from shared.queue.job_queue import JobQueue
from shared.wire.messages import MessagesRequest
from tests.fakes import fake_cli
from tests.fakes.upstream import (
    BlocksReply,
    ErrorReply,
    FakeUpstream,
    HangReply,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)
from tests.resident_fidelity import sent_without_session, without_cli_reminders
from tests.waiting import async_wait_until
from worker.cli.config import CliConfig
from worker.cli.process import CliProcess
from worker.cli.resident import Continuation, ResidentCli, ResidentConversations
from worker.cli.workspace import create_workspace
from worker.reply.answer import answer_with_cli
from worker.reply.chunk_publisher import ChunkPublisher

BOUND_S = 60.0
MODEL = "claude-sonnet-4-5"
TOOL = {
    "name": "lookup",
    "description": "Looks a word up.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}

HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Define 'quay'."},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Look it up.", "signature": "sig_turn_1"},
            {"type": "tool_use", "id": "toolu_01", "name": "lookup", "input": {"word": "quay"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": [{"type": "text", "text": "a platform beside water"}],
            }
        ],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "A quay is a platform."}]},
    {"role": "user", "content": [{"type": "text", "text": "And 'key'?"}]},
]


@dataclass(frozen=True)
class Turn:
    """What the model answers turn N with, as the client sends it back, and what turn N+1 adds."""

    reply: BlocksReply
    echoed: dict[str, Any]
    follow_up: dict[str, Any]


TEXT_TURN = Turn(
    BlocksReply([ThinkingBlock("Homophones.", signature="sig_turn_2"), TextBlock("Same sound.")]),
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Homophones.", "signature": "sig_turn_2"},
            {"type": "text", "text": "Same sound."},
        ],
    },
    {"role": "user", "content": "Spell both."},
)
TOOL_TURN = Turn(
    BlocksReply(
        [
            ThinkingBlock("Look again.", signature="sig_turn_2"),
            ToolUseBlock("toolu_02", "mcp__client__lookup", {"word": "key"}),
        ]
    ),
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Look again.", "signature": "sig_turn_2"},
            {"type": "tool_use", "id": "toolu_02", "name": "lookup", "input": {"word": "key"}},
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_02", "content": "a lock opener"}],
    },
)


def request_of(messages: list[dict[str, Any]]) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {
            "model": MODEL,
            "max_tokens": 2000,
            "system": "Answer briefly.",
            "tools": [TOOL],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": messages,
        }
    )


class Worker:
    """`answer_with_cli` as a worker runs it, on one job queue, with or without residents."""

    def __init__(
        self, config: CliConfig, redis: Redis, queue: JobQueue, residents: ResidentConversations
    ) -> None:
        self.config = config
        self.redis = redis
        self.queue = queue
        self.residents = residents

    async def answer(
        self, messages: list[dict[str, Any]], *, resident: bool, client_key: str = "key-a"
    ) -> None:
        request = request_of(copy.deepcopy(messages))
        job = await self.queue.submit(
            request, request_id=f"req_{uuid.uuid4().hex[:8]}", lane="interactive", lane_limit=10
        )
        publisher = ChunkPublisher(self.redis, job.job_id, attempt=1, ttl_s=600, max_chunks=1000)
        async with asyncio.timeout(BOUND_S):
            await answer_with_cli(
                request,
                job.job_id,
                publisher,
                self.config,
                residents=self.residents if resident else None,
                client_key=client_key,
            )


def cli_config(
    claude_bin: str, upstream: FakeUpstream, root: Path, *, bare: bool, **env: str
) -> CliConfig:
    login = (
        {"ANTHROPIC_API_KEY": "sk-ant-api03-fake-test-key"}
        if bare
        else {"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake-test-token"}
    )
    work_root = root / "jobs"
    work_root.mkdir(exist_ok=True)
    return CliConfig(
        claude_bin=claude_bin,
        base_env={
            "PATH": os.environ["PATH"],
            "ANTHROPIC_BASE_URL": upstream.url,
            **login,
            **env,
        },
        work_root=str(work_root),
        timeout_s=BOUND_S,
        kill_grace_s=0.5,
    )


@pytest.fixture
async def make_worker(
    claude_bin: str, upstream: FakeUpstream, redis: Redis, job_queue: JobQueue, tmp_path: Path
) -> Any:
    made: list[ResidentConversations] = []

    def build(*, bare: bool = False, **env: str) -> Worker:
        residents = ResidentConversations(max_resident=4, idle_s=300)
        made.append(residents)
        config = cli_config(claude_bin, upstream, tmp_path, bare=bare, **env)
        return Worker(config, redis, job_queue, residents)

    yield build
    for residents in made:
        await residents.close()


def was_reaped(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def next_turn_both_ways(
    worker: Worker, upstream: FakeUpstream, turn: Turn
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Turn N with residents on, then turn N+1 resident and replayed: the two upstream bodies."""
    upstream.enqueue(turn.reply)
    await worker.answer(HISTORY, resident=True)
    following = [*HISTORY, turn.echoed, turn.follow_up]
    await worker.answer(following, resident=True)
    assert worker.residents.stats.hits == 1, "turn N+1 continued in turn N's CLI"
    resident_body = upstream.requests[-1].body
    await worker.answer(following, resident=False)
    replayed_body = upstream.requests[-1].body
    assert len(upstream.requests) == 3
    return resident_body, replayed_body


async def test_with_an_api_key_the_next_turn_sends_the_replayed_request_byte_for_byte(
    make_worker: Any, upstream: FakeUpstream
) -> None:
    resident, replayed = await next_turn_both_ways(make_worker(bare=True), upstream, TEXT_TURN)
    assert sent_without_session(resident) == sent_without_session(replayed)
    assert len(resident["messages"]) == len(HISTORY) + 2


@pytest.mark.parametrize("turn", [TEXT_TURN, TOOL_TURN], ids=["text", "tool-result"])
async def test_with_a_login_the_next_turn_differs_from_a_replay_only_in_the_cli_reminders(
    make_worker: Any, upstream: FakeUpstream, turn: Turn
) -> None:
    resident, replayed = await next_turn_both_ways(make_worker(), upstream, turn)
    assert without_cli_reminders(resident) == without_cli_reminders(replayed)
    signatures = [
        block.get("signature")
        for message in resident["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
    ]
    assert "sig_turn_1" in signatures and "sig_turn_2" in signatures


async def test_a_resident_cli_never_compacts_its_conversation_even_past_its_threshold(
    make_worker: Any, upstream: FakeUpstream
) -> None:
    # An operator's settings that make the CLI compact at 1 % of a 100k window (measured:
    # without DISABLE_COMPACT it asks the model for a summary and sends that instead).
    worker = make_worker(
        CLAUDE_CODE_AUTO_COMPACT_WINDOW="100000", CLAUDE_AUTOCOMPACT_PCT_OVERRIDE="1"
    )
    reply = TEXT_TURN.reply
    upstream.enqueue(
        BlocksReply(reply.blocks, input_tokens=150_000), BlocksReply([TextBlock("Both.")])
    )
    await worker.answer(HISTORY, resident=True)
    await worker.answer([*HISTORY, TEXT_TURN.echoed, TEXT_TURN.follow_up], resident=True)
    assert worker.residents.stats.hits == 1
    assert len(upstream.requests) == 2, "no summary request"
    assert len(upstream.requests[-1].body["messages"]) == len(HISTORY) + 2


async def test_another_key_with_the_same_history_replays_and_leaves_the_first_keys_cli_alone(
    make_worker: Any, upstream: FakeUpstream
) -> None:
    worker = make_worker()
    upstream.enqueue(TEXT_TURN.reply)
    await worker.answer(HISTORY, resident=True, client_key="key-a")
    held = worker.residents.pids()
    await worker.answer(
        [*HISTORY, TEXT_TURN.echoed, TEXT_TURN.follow_up], resident=True, client_key="key-b"
    )
    # Both turns missed: turn N found no CLI, nor did key-b's.
    assert worker.residents.stats.hits == 0 and worker.residents.stats.misses == 2
    assert set(held) <= set(worker.residents.pids()), "key-a's CLI still holds key-a's turn"
    assert len(worker.residents.pids()) == 2


async def test_a_failed_resident_turn_stops_its_cli_and_the_next_try_replays(
    make_worker: Any, upstream: FakeUpstream
) -> None:
    worker = make_worker()
    upstream.enqueue(TEXT_TURN.reply, ErrorReply(500, "api_error", "Boom."))
    await worker.answer(HISTORY, resident=True)
    [pid] = worker.residents.pids()
    following = [*HISTORY, TEXT_TURN.echoed, TEXT_TURN.follow_up]
    with pytest.raises(FleetError):
        await worker.answer(following, resident=True)
    assert worker.residents.stats.hits == 1
    assert worker.residents.pids() == [] and was_reaped(pid)
    await worker.answer(following, resident=True)
    assert worker.residents.stats.misses == 2, "turn N's and the retry's replays"


async def test_a_cancelled_resident_turn_stops_its_cli(
    make_worker: Any, upstream: FakeUpstream
) -> None:
    worker = make_worker()
    upstream.enqueue(TEXT_TURN.reply, HangReply())
    await worker.answer(HISTORY, resident=True)
    [pid] = worker.residents.pids()
    task = asyncio.create_task(
        worker.answer([*HISTORY, TEXT_TURN.echoed, TEXT_TURN.follow_up], resident=True)
    )
    await async_wait_until(lambda: len(upstream.requests) == 2, BOUND_S, "the second request")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert worker.residents.pids() == [] and was_reaped(pid)


async def _resident(
    tmp_path: Path, holds: str, kill_grace_s: float = 0.5, **env: str
) -> ResidentCli:
    """A fake CLI between turns (sleeping; `env` may choose another fake mode) holding `holds`,
    its first line read (so a mode that ignores SIGTERM does so already)."""
    workspace = create_workspace(str(tmp_path), holds)
    process = CliProcess(
        [sys.executable, fake_cli.__file__],
        env={"PATH": os.environ["PATH"], "FAKE_CLI_MODE": "sleep", **env},
        cwd=workspace.cwd,
        kill_grace_s=kill_grace_s,
    )
    await process.start()
    assert await process.read_message() is not None
    return ResidentCli(process, workspace, holds=holds)


async def test_beyond_its_limit_the_least_recently_used_resident_cli_is_stopped_first(
    tmp_path: Path,
) -> None:
    residents = ResidentConversations(max_resident=2, idle_s=300)
    kept = []
    try:
        for name in ("a", "b", "c"):
            kept.append(await _resident(tmp_path, name))
            residents.keep(kept[-1])
            if name == "b":  # "a" is used again: "b" is now the least recently used
                resident = residents.take(Continuation(held="a", new_messages=[]))
                assert resident is not None
                residents.keep(resident)
        a, b, c = (resident.process for resident in kept)
        assert sorted(residents.pids()) == sorted([a.pid, c.pid])
        assert residents.stats.evicted == 1
        await async_wait_until(lambda: b.returncode is not None, BOUND_S, "b stopped")
        assert a.returncode is None and c.returncode is None
    finally:
        await residents.close()
    assert all(resident.process.returncode is not None for resident in kept)


async def test_a_turn_that_evicts_a_cli_slow_to_stop_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    # A job holds its worker slot until it returns, and a worker that shows no free slot is not
    # offered its conversations' next turns: keeping a CLI must leave the evicted one's stop
    # (SIGTERM, grace, SIGKILL) to the residents.
    signals = tmp_path / "signals"
    residents = ResidentConversations(max_resident=1, idle_s=300)
    stubborn = await _resident(
        tmp_path,
        "old",
        kill_grace_s=3600,  # the test ends its grace itself, with a SIGKILL
        FAKE_CLI_MODE="ignore_sigterm",
        FAKE_CLI_SIGNAL_FILE=str(signals),
    )
    try:
        residents.keep(stubborn)
        residents.keep(await _resident(tmp_path, "new"))  # returns: the turn can end
        assert residents.stats.evicted == 1
        await async_wait_until(
            lambda: signals.exists() and "SIGTERM" in signals.read_text(), BOUND_S, "the SIGTERM"
        )
        assert stubborn.process.returncode is None  # still in its grace, outside the turn
        os.kill(stubborn.process.pid, signal.SIGKILL)  # its grace over
        workspace = Path(stubborn.workspace.base)  # removed once its CLI is reaped
        await async_wait_until(lambda: not workspace.exists(), BOUND_S, "the CLI stopped")
        assert was_reaped(stubborn.process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stubborn.process.pid, signal.SIGKILL)
        await residents.close()
