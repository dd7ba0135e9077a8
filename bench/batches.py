"""Message batches: creating big ones (time, front end peak RSS, Redis bytes per request), and
processing throughput with 1 and 3 workers.

`uv run python bench/batches.py [--create 10000,100000] [--process 40] [--cli real|fake]`

Starts a private stack as the tests do: an embedded Redis, one front end (`ccfleet api`) and
workers (`ccfleet worker`, 2 slots each, 1 reserved for interactive work, so 1 batch slot
each) as child processes, with the real pinned CLI against the in-process fake upstream
(`--cli fake`: tests/fakes/fake_cli.py instead, to see the fleet's own ceiling).

- create: POST /v1/messages/batches with N small requests (~190 bytes each); the time to the
  201-style reply, the front end's peak RSS (VmHWM) after it, and Redis's used_memory growth
  divided by N.
- process: a batch of M requests through 1 and then 3 workers; requests per second from
  creation to `ended`, and per batch slot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
import orjson
import redis as redis_lib

from bench.spread import Figures, machine_line
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from tests.fakes import fake_cli
from tests.fakes.upstream import FakeUpstream
from tests.processes import ManagedProcess, http_ok, wait_until

MODEL = "claude-sonnet-4-5"


def batch_body(count: int, prefix: str) -> bytes:
    items = [
        {
            "custom_id": f"{prefix}-{i}",
            "params": {
                "model": MODEL,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"Say something short about {i}."}],
            },
        }
        for i in range(count)
    ]
    return orjson.dumps({"requests": items})


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class BenchStack:
    def __init__(
        self, root: Path, redis: EmbeddedRedis, upstream: FakeUpstream, cli: str, cli_kind: str
    ):
        self.cli_kind = cli_kind
        self.root = root
        self.redis = redis
        self.upstream = upstream
        self.cli = cli
        self.processes: list[ManagedProcess] = []

    def env(self) -> dict[str, str]:
        (self.root / "claude-config").mkdir(exist_ok=True)
        return {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "CCFLEET_REDIS_URL": self.redis.url,
            "CCFLEET_CLAUDE_BIN": self.cli,
            "CCFLEET_WORKER_SLOTS": "2",
            "CCFLEET_LOG_LEVEL": "WARNING",
            "CCFLEET_AUTH": "off",  # a private stack on loopback
            "CCFLEET_PREWARM_CLIS": "0",  # one CLI start per request, as measured below
            "ANTHROPIC_BASE_URL": self.upstream.url,
            "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake-bench-token",
            "CLAUDE_CONFIG_DIR": str(self.root / "claude-config"),
        }

    def api(self) -> tuple[ManagedProcess, str]:
        port = free_port()
        log = self.root / f"api{len(self.processes)}.log"
        process = ManagedProcess(["api", "--port", str(port)], env=self.env(), log_path=log)
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{url}/health"), 30, "front end")
        return process, url

    def worker(self) -> ManagedProcess:
        log = self.root / f"worker{len(self.processes)}.log"
        process = ManagedProcess(["worker"], env=self.env(), log_path=log)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()


def measure_create(stack: BenchStack, count: int, figures: Figures) -> None:
    api, url = stack.api()
    redis = redis_lib.Redis.from_url(stack.redis.url)
    redis.flushall()
    before = int(redis.info("memory")["used_memory"])  # type: ignore[index]  # redis-py 5 types replies sync-or-async
    body = batch_body(count, "c")
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/v1/messages/batches",
        content=body,
        headers={"content-type": "application/json"},
        timeout=600,
    )
    took = time.perf_counter() - started
    response.raise_for_status()
    grown = int(redis.info("memory")["used_memory"]) - before  # type: ignore[index]  # redis-py 5 types replies sync-or-async
    print(
        f"create {count:>7} requests ({len(body) / 1e6:6.1f} MB body): {took:6.2f} s, "
        f"front end peak RSS {peak_rss_mb(api.pid):6.1f} MB, "
        f"Redis {grown / count:5.0f} bytes/request ({len(body) / count:.0f} in the body)"
    )
    figures.add(f"create a batch of {count:,} requests", took, unit="s", digits=2)
    figures.add(f"… front end peak RSS ({count:,})", peak_rss_mb(api.pid), unit="MB", digits=0)
    stack.stop()


def measure_processing(stack: BenchStack, workers: int, count: int, figures: Figures) -> None:
    redis_lib.Redis.from_url(stack.redis.url).flushall()
    for _ in range(workers):
        stack.worker()
    _, url = stack.api()
    wait_until(lambda: http_ok(f"{url}/ready"), 60, "a worker")
    started = time.perf_counter()
    batch = httpx.post(
        f"{url}/v1/messages/batches",
        content=batch_body(count, f"p{workers}"),
        headers={"content-type": "application/json"},
    ).json()
    state: dict[str, Any] = batch
    while state["processing_status"] != "ended":
        time.sleep(0.05)
        state = httpx.get(f"{url}/v1/messages/batches/{batch['id']}").json()
    took = time.perf_counter() - started
    slots = workers  # 2 slots each, 1 reserved for interactive work
    print(
        f"process {count} requests, {workers} worker(s), {slots} batch slot(s): {took:6.1f} s, "
        f"{count / took:5.2f} requests/s, {count / took / slots:5.2f} per batch slot; "
        f"counts {state['request_counts']}"
    )
    plural = "s" if workers > 1 else ""
    label = f"batch throughput, {stack.cli_kind} CLI, {workers} worker{plural} (1 batch slot each)"
    figures.add(label, count / took, unit="requests/s", digits=2)
    stack.stop()


def fake_cli_bin(root: Path) -> str:
    path = root / "fake-claude"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {fake_cli.__file__} "$@"\n')
    path.chmod(0o755)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--create", default="10000,100000", help="batch sizes to create")
    parser.add_argument("--process", type=int, default=40, help="requests per throughput run")
    parser.add_argument("--cli", choices=("real", "fake"), default="real")
    parser.add_argument("--claude-bin", default=os.environ.get("CCFLEET_TEST_CLAUDE_BIN", ""))
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--figures", type=Path, help="save the figures here (bench/perf.py)")
    args = parser.parse_args()
    print(f"batches, {args.runs} runs each; {machine_line()}", flush=True)
    figures = Figures()
    root = Path(tempfile.mkdtemp(prefix="ccfleet-bench-batches-"))
    try:
        with EmbeddedRedis(root / "redis") as redis, FakeUpstream() as upstream:
            cli = fake_cli_bin(root) if args.cli == "fake" else args.claude_bin
            if not cli:
                sys.exit("--claude-bin (or CCFLEET_TEST_CLAUDE_BIN) is needed with --cli real")
            stack = BenchStack(root, redis, upstream, cli, args.cli)
            try:
                for _ in range(args.runs):
                    for size in filter(None, args.create.split(",")):
                        measure_create(stack, int(size), figures)
                    for workers in (1, 3) if args.process else ():
                        measure_processing(stack, workers, args.process, figures)
            finally:
                stack.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures.print()
    if args.figures:
        figures.save(args.figures)


if __name__ == "__main__":
    main()
