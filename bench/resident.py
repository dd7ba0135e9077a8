"""Resident conversations: the next turn of a long conversation vs a one-message request, the
CPU a follow-up turn costs, the resident hit rate of a Claude-Code-like workload, and the
memory of a resident CLI.

`uv run python bench/resident.py [--repeats 5] [--samples 3] [--sessions 20] [--turns 30]
[--claude-bin PATH]`

Starts a private stack as the tests do (bench/stack.py: embedded Redis; the in-process
FakeUpstream answering at once; the real CLI with a fake OAuth token; front end and workers as
child processes). Then:

1. one worker, `--repeats` times: time to first text (to the first `content_block_delta`) of
   a 200-message conversation's turn replayed (its first turn here), then `--samples` times
   a one-message request and the conversation's next turn, resident (the history, the reply,
   one new message), each after the worker settled; the CPU time of the worker and its CLIs
   per resident turn, from /proc after they settle. A repeat's ratio is the median of its
   resident turns over the median of its one-message requests: one request made fast or slow
   by the machine's other work moves it little.
2. two workers of one account: `--sessions` sessions of `--turns` turns, 4 at a time, as
   Claude Code sends them: each answer a tool call or text, alternately, each next request the
   whole history plus the tool's result or the user's next message. The hit rate is the
   workers' resident hits over their follow-up turns (heartbeats); then the RSS of each
   resident CLI.
Targets (issue 18): next turn <= 1.2x a one-message request; <= 0.2 CPU-s per follow-up;
hit rate >= 90 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
import redis as redis_lib

from bench.stack import bench_stack, default_claude_bin, found_claude_bin, heartbeats
from shared.telemetry.first_token import is_token_event
from tests.fakes.upstream import BlocksReply, RecordedRequest, TextBlock, ToolUseBlock
from tests.processes import cli_processes
from worker.cli.resident import ReplyRecorder

MODEL = "claude-sonnet-4-6"
TOOL = {
    "name": "read_file",
    "description": "Reads a file.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
HISTORY_MESSAGES = 200


def spread(values: list[float], unit: str = "", digits: int = 0) -> str:
    """Median and min-max of repeated runs."""
    if not values:
        return "n/a"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f}{unit} (min {low:.{digits}f}, max {high:.{digits}f}; n={len(values)})"


def responder(request: RecordedRequest) -> BlocksReply:
    """A tool call after a user's text, text after a tool result: a coding agent's rhythm."""
    last = request.body["messages"][-1]["content"]
    after_tool = isinstance(last, list) and any(b.get("type") == "tool_result" for b in last)
    if after_tool or not request.body.get("tools"):
        return BlocksReply([TextBlock("Done; the file says what you expected.")])
    call = ToolUseBlock(f"toolu_{uuid.uuid4().hex[:20]}", "mcp__client__read_file", {"path": "a"})
    return BlocksReply([TextBlock("Let me look."), call])


class Client:
    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url, self.http = url, http

    async def turn(
        self, messages: list[dict[str, Any]], *, tools: bool = False
    ) -> tuple[float, dict[str, Any]]:
        """Seconds to the first text, and the answer as the client sends it back."""
        body: dict[str, Any] = {
            "model": MODEL, "max_tokens": 512, "stream": True, "messages": messages,
        }  # fmt: skip
        if tools:
            body["tools"] = [TOOL]
        reply = ReplyRecorder()
        first = None
        t0 = time.perf_counter()
        async with self.http.stream("POST", f"{self.url}/v1/messages", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("event: error"):
                    raise RuntimeError(f"the turn failed: {line}")
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if first is None and is_token_event(event.get("type")):
                    first = time.perf_counter() - t0
                reply.feed(event)
        assert first is not None, "no text"
        return first, reply.message()


def long_history(n: int) -> list[dict[str, Any]]:
    """`n` messages (user first and last), ~0.5 KB each."""
    words = " ".join(f"w{i}" for i in range(100))
    history: list[dict[str, Any]] = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"{uuid.uuid4().hex} message {i}: {words}"
        history.append({"role": role, "content": [{"type": "text", "text": text}]})
    return history


# --- /proc -------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def tree_cpu_s(root: int) -> float:
    """CPU time of `root` and its children, living (each's own) and reaped (cutime, cstime)."""
    total = 0
    for pid in [root, *children(root)]:
        fields = _stat(pid)
        if fields:
            total += sum(int(f) for f in fields[11:15])
    return total * TICK_S


def children(root: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == root:
            found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    fields = _stat(pid)
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20 if fields else 0.0


STILL_S = 1.0
"""How long the worker tree's CPU time must stand still to count as settled: a ready CLI
starting pauses for a few hundred milliseconds midway (a 0.2 s pause counted the rest of its
start-up against the next resident turn: 0.05 or 0.4 CPU-s a turn, at random)."""


async def settle(worker_pid: int) -> float:
    """Wait until the worker tree's CPU time stands still for `STILL_S` (ready CLIs started,
    answered CLIs gone); that CPU time."""
    last, still_since = -1.0, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = tree_cpu_s(worker_pid)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= STILL_S:
            break
    return last


# --- part 1 --------------------------------------------------------------------------------
class NextTurnSamples:
    """Part 1's samples: every one-message and resident request, each repeat's replay, the
    CPU of each resident turn, and each repeat's ratio of the medians."""

    def __init__(self) -> None:
        self.one: list[float] = []
        self.replayed: list[float] = []
        self.resident: list[float] = []
        self.cpu: list[float] = []
        self.ratios: list[float] = []


async def one_repeat(client: Client, worker_pid: int, samples: int, into: NextTurnSamples) -> None:
    """A 200-message conversation replayed, then `samples` times a one-message request and the
    conversation's next turn (resident), each after the worker settled; the repeat's ratio is
    of the medians, so that one fast or slow request does not make it."""
    history = long_history(HISTORY_MESSAGES - 1)
    await settle(worker_pid)
    seconds, reply = await client.turn(history)
    into.replayed.append(seconds)
    ones, nexts = [], []
    for k in range(samples):
        await settle(worker_pid)
        ones.append((await client.turn([{"role": "user", "content": uuid.uuid4().hex}]))[0])
        history = [*history, reply, {"role": "user", "content": f"And step {k}?"}]
        before = await settle(worker_pid)
        seconds, reply = await client.turn(history)
        nexts.append(seconds)
        into.cpu.append(await settle(worker_pid) - before)
    into.one += ones
    into.resident += nexts
    into.ratios.append(statistics.median(nexts) / statistics.median(ones))


async def next_turn_figures(client: Client, worker_pid: int, repeats: int, samples: int) -> None:
    figures = NextTurnSamples()
    await client.turn([{"role": "user", "content": "warm-up"}])
    for _ in range(repeats):
        await one_repeat(client, worker_pid, samples, figures)

    def ms(values: list[float]) -> str:
        return spread([v * 1000 for v in values], " ms")

    print(f"time to first text, one message:              {ms(figures.one)}")
    print(f"  {HISTORY_MESSAGES}-message turn, replayed (first turn):  {ms(figures.replayed)}")
    print(f"  {HISTORY_MESSAGES}-message turn, resident (next turns):  {ms(figures.resident)}")
    print(f"  resident / one message, per repeat (medians of {samples} each; target <= 1.2): "
          f"{spread(figures.ratios, '', 2)}")  # fmt: skip
    print(f"CPU per resident turn, worker + CLIs (<= 0.2 s): {spread(figures.cpu, ' s', 2)}")


# --- part 2 --------------------------------------------------------------------------------
async def session(client: Client, n: int, turns: int) -> None:
    history: list[dict[str, Any]] = [{"role": "user", "content": f"Session {n}: fix the bug."}]
    for t in range(turns):
        _, reply = await client.turn(history, tools=True)
        history.append(reply)
        calls = [b for b in reply["content"] if b["type"] == "tool_use"]
        if calls:
            result = {"type": "tool_result", "tool_use_id": calls[0]["id"], "content": f"line {t}"}
            history.append({"role": "user", "content": [result]})
        else:
            history.append({"role": "user", "content": f"Session {n}: now step {t}."})


async def workload(client: Client, sessions: int, turns: int, at_once: int) -> float:
    gate = asyncio.Semaphore(at_once)

    async def one(n: int) -> None:
        async with gate:
            await session(client, n, turns)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(sessions)))
    return time.perf_counter() - t0


def hit_report(redis_url: str, claude_bin: str, worker_pids: list[int]) -> None:
    time.sleep(1.5)  # a heartbeat or two
    beats = heartbeats(redis_url)
    hits = sum(int(b.get(b"resident_hits", 0)) for b in beats)
    misses = sum(int(b.get(b"resident_misses", 0)) for b in beats)
    print(f"resident hit rate (target >= 90 %): {100 * hits / max(1, hits + misses):.1f} % "
          f"({hits} of {hits + misses} follow-up turns)")  # fmt: skip
    clis = [pid for w in worker_pids for pid in children(w) if pid in cli_processes(claude_bin)]
    print(f"RSS per live CLI (resident or ready): {spread([rss_mb(p) for p in clis], ' MB')}")


async def with_client(url: str, run: Callable[[Client], Any]) -> Any:
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as http:
        return await run(Client(url, http))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=3, help="requests of each kind a repeat")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--claude-bin", default=default_claude_bin())
    args = parser.parse_args()
    claude_bin = found_claude_bin(parser, args.claude_bin)
    print(f"ccfleet resident conversations: {time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with bench_stack(responder) as stack:
        env = stack.env(
            claude_bin,
            CCFLEET_WORKER_SLOTS="4",
            CCFLEET_PREWARM_CLIS="1",
            CCFLEET_RESIDENT_MAX="4",
            CCFLEET_ACCOUNT="alice",
        )
        url, (worker,) = stack.start(env, workers=1)
        asyncio.run(
            with_client(url, lambda c: next_turn_figures(c, worker, args.repeats, args.samples))
        )
        stack.stop_processes()
        redis_lib.Redis.from_url(stack.redis.url).flushall()
        url, workers = stack.start(env, workers=2)
        seconds = asyncio.run(
            with_client(url, lambda c: workload(c, args.sessions, args.turns, at_once=4))
        )
        print(f"workload: {args.sessions} sessions x {args.turns} turns, 4 at a time, "
              f"2 workers: {seconds:.0f} s")  # fmt: skip
        hit_report(stack.redis.url, claude_bin, workers)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
