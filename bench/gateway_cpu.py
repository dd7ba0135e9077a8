"""CPU the gateway spends per request: front end + worker processes, not the CLI.

`uv run python bench/gateway_cpu.py [--requests 200] [--concurrency 4]`

Starts an embedded Redis, one front end and one worker whose `claude` is the zero-cost fake CLI
(tests/fakes/fake_cli.py: a complete short answer at once), so only the gateway's own work
is left. Sends `--requests` streaming requests, `--concurrency` at a time, and divides the CPU
time the front end and worker processes used over the whole run (utime + stime of the two
processes themselves, idle time between requests included; the CLIs' CPU is their own) by the
number of requests; `--runs` times on the same stack, then the median and range. Target
(issue 11): <= 40 ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx

from bench.idle_worker import cpu_seconds
from bench.spread import Figures, machine_line
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from tests.fakes import fake_cli
from tests.processes import ManagedProcess, http_ok, wait_until

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 64,
    "stream": True,
    "messages": [{"role": "user", "content": "Say hello."}],
}


async def one_request(client: httpx.AsyncClient, url: str) -> None:
    async with client.stream("POST", f"{url}/v1/messages", json=BODY) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: message_stop"):
                return
    raise RuntimeError("stream ended without message_stop")


async def send_all(url: str, requests: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def limited() -> None:
        async with gate:
            await one_request(client, url)

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(limited() for _ in range(requests)))


def fake_claude(root: Path) -> str:
    wrapper = root / "claude"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{fake_cli.__file__}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--figures", type=Path, help="save the figures here (bench/perf.py)")
    args = parser.parse_args()
    figures = Figures()
    root = Path(tempfile.mkdtemp(prefix="ccfleet-cpu-"))
    redis = EmbeddedRedis(root / "redis").start()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "CCFLEET_REDIS_URL": redis.url,
        "CCFLEET_CLAUDE_BIN": fake_claude(root),
        "CCFLEET_WORKER_SLOTS": str(args.concurrency),
        "CCFLEET_LOG_LEVEL": "WARNING",
        "CCFLEET_AUTH": "off",
        "CLAUDE_CODE_OAUTH_TOKEN": "bench-token",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    worker = ManagedProcess(["worker"], env=env, log_path=root / "worker.log")
    api = ManagedProcess(["api", "--port", str(port)], env=env, log_path=root / "api.log")
    try:
        wait_until(lambda: http_ok(f"{url}/ready"), 60, "the front end")
        asyncio.run(send_all(url, 4, 1))  # warm-up
        print(f"gateway CPU: {args.requests} streaming requests, {args.concurrency} at a time, "
              f"{args.runs} runs; {machine_line()}", flush=True)  # fmt: skip
        for number in range(1, args.runs + 1):
            ms_per_request, per_s = measure(url, (api.pid, worker.pid), args)
            print(f"run {number}: front end + worker CPU {ms_per_request:.1f} ms per request; "
                  f"{per_s:.1f} requests/s with the zero-cost CLI", flush=True)  # fmt: skip
            figures.add("front end + worker CPU per request", ms_per_request, target="≤ 40 ms")
    finally:
        api.stop()
        worker.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    figures.print()
    if args.figures:
        figures.save(args.figures)


def measure(url: str, pids: tuple[int, ...], args: argparse.Namespace) -> tuple[float, float]:
    """CPU ms per request of the processes `pids`, and requests per second, over one run."""
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    started = time.monotonic()
    asyncio.run(send_all(url, args.requests, args.concurrency))
    elapsed = time.monotonic() - started
    cpu_used = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    return 1000 * cpu_used / args.requests, args.requests / elapsed


if __name__ == "__main__":
    main()
