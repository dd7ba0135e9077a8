"""Conversation affinity: how many follow-up turns land on the account of their conversation's
first turn, with 3 accounts, and the client errors when that account cools half-way.

`uv run python bench/affinity.py [--conversations 30] [--turns 4] [--concurrency 6]`

Starts an embedded Redis, one front end and three workers (accounts a, b, c) running the
zero-cost fake CLI, then runs the conversations, `--concurrency` at a time, each turn one turn
longer than the last. Half-way through, account a cools (as a worker marks it on a usage limit);
its conversations must carry on elsewhere without an error. The account of each turn is read
from its job record. Target (issue 11): >= 90 % of follow-ups on their first turn's account.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
from redis.asyncio import Redis

from bench.gateway_cpu import fake_claude
from bench.spread import Figures, machine_line
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
from shared.fleet.registry import set_account_cooling
from tests.processes import ManagedProcess, http_ok, wait_until

ACCOUNTS = ("a", "b", "c")


class Run:
    def __init__(self, url: str, redis: Redis) -> None:
        self.url, self.redis = url, redis
        self.workers: dict[str, str] = {}
        self.follow_ups = self.kept = self.errors = 0
        self.cooled = ""

    async def account_of(self, job_id: str) -> str:
        raw: bytes | None = await self.redis.hget(redis_keys.job_record(job_id), "worker")  # type: ignore[misc]  # redis-py 5 types replies sync-or-async
        worker = (raw or b"").decode()
        if worker not in self.workers:
            for worker_id in await self.redis.zrange(redis_keys.workers_index(), 0, -1):
                beat = await self.redis.hgetall(redis_keys.worker_heartbeat(worker_id.decode()))  # type: ignore[misc]  # redis-py 5 types replies sync-or-async
                self.workers[worker_id.decode()] = beat[b"account"].decode()
        return self.workers.get(worker, "?")

    async def turn(self, client: httpx.AsyncClient, messages: list[dict[str, Any]]) -> str:
        body = {"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": True,
                "messages": messages}  # fmt: skip
        job_id = ""
        async with client.stream("POST", f"{self.url}/v1/messages", json=body) as response:
            if response.status_code != 200:
                self.errors += 1
                return "?"
            async for line in response.aiter_lines():
                if line.startswith("id:") and not job_id:
                    job_id = line[3:].strip().rpartition(":")[0]
                elif line.startswith("event: error"):
                    self.errors += 1
        return await self.account_of(job_id)

    async def conversation(self, client: httpx.AsyncClient, n: int, turns: int) -> None:
        history: list[dict[str, Any]] = []
        first = ""
        for t in range(turns):
            history = [*history, {"role": "user", "content": f"Conversation {n}, turn {t}."}]
            account = await self.turn(client, history)
            if t == 0:
                first = account
            elif first != self.cooled:  # a cooled account's conversations must move on
                self.follow_ups += 1
                self.kept += account == first
            history = [*history, {"role": "assistant", "content": "Hello"}]


async def run(url: str, redis_url: str, args: argparse.Namespace) -> Run:
    redis = Redis.from_url(redis_url)
    state = Run(url, redis)
    gate = asyncio.Semaphore(args.concurrency)

    async def one(n: int) -> None:
        async with gate:
            await state.conversation(client, n, args.turns)
        if n == args.conversations // 2:
            state.cooled = "a"
            await set_account_cooling(redis, "a", until_s=time.time() + 3600, reason="five_hour")

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(one(n) for n in range(args.conversations)))
    await redis.aclose()
    return state


def run_once(args: argparse.Namespace) -> Run:
    """One run on a fresh stack (account a cools in it for good)."""
    root = Path(tempfile.mkdtemp(prefix="ccfleet-affinity-"))
    redis = EmbeddedRedis(root / "redis").start()
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "CCFLEET_REDIS_URL": redis.url,
           "CCFLEET_CLAUDE_BIN": fake_claude(root), "CCFLEET_LOG_LEVEL": "WARNING",
           "CCFLEET_AUTH": "off",
           "CCFLEET_WORKER_SLOTS": "3", "CLAUDE_CODE_OAUTH_TOKEN": "bench-token"}  # fmt: skip
    procs = [ManagedProcess(["api", "--port", str(port)], env=env, log_path=root / "api.log")]
    for name in ACCOUNTS:
        worker_env = {**env, "CCFLEET_ACCOUNT": name}
        procs.append(ManagedProcess(["worker"], env=worker_env, log_path=root / f"{name}.log"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/ready"), 60, "the front end")
        return asyncio.run(run(url, redis.url, args))
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh stack")
    parser.add_argument("--figures", type=Path, help="save the figures here (bench/perf.py)")
    args = parser.parse_args()
    print(f"conversation affinity, 3 accounts: {args.conversations} conversations x "
          f"{args.turns} turns, {args.concurrency} at once, account a cooled half-way; "
          f"{args.runs} runs; {machine_line()}", flush=True)  # fmt: skip
    figures = Figures()
    for number in range(1, args.runs + 1):
        state = run_once(args)
        share = 100 * state.kept / max(1, state.follow_ups)
        print(f"run {number}: follow-ups on their first turn's account {share:.0f} % "
              f"({state.kept} of {state.follow_ups}); client errors {state.errors}",
              flush=True)  # fmt: skip
        figures.add("follow-ups on their conversation's account", share, unit="%",
                    target="≥ 90 %", digits=0)  # fmt: skip
        figures.add("… client errors", state.errors, unit="", target="0", digits=0)
    figures.print()
    if args.figures:
        figures.save(args.figures)


if __name__ == "__main__":
    main()
