"""How soon a killed worker's client hears of it: SIGKILL mid-stream, time to `event: error`.

`uv run python bench/dead_worker.py [--repeats 5] [--env NAME=VALUE ...]`

Starts an embedded Redis and a front end; then, `--repeats` times, a worker (`--env` adds to
its and the front end's environment, e.g. a heartbeat to compare) whose CLI is the fake in
mode `stream_forever` (a text delta every 50 ms, never done), a streaming request, and once
two deltas arrived, SIGKILL to the worker (no chance to unregister). Prints the time from the
kill to the stream's `event: error`, median and min-max. Target (issue 19): within 3 s.
A job that had sent nothing is found by the same check (api/relay/job_watch.py), then re-run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
import redis as redis_lib

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
from tests.fakes import fake_cli
from tests.processes import ManagedProcess, http_ok, wait_until

REQUEST = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "Say hello."}],
}


def registered(client: redis_lib.Redis, pid: int) -> bool:
    """Has the worker of process `pid` beaten yet (its id is `<host>-<pid>-<random>`)?"""
    ids: list[bytes] = client.zrange(redis_keys.workers_index(), 0, -1)  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
    return any(f"-{pid}-".encode() in worker_id for worker_id in ids)


def seconds_to_error(api_url: str, worker: ManagedProcess) -> float:
    """Stream, kill the worker after two deltas; seconds from the kill to `event: error`."""
    deltas, killed_at = 0, 0.0
    with httpx.stream(
        "POST", f"{api_url}/v1/messages", json=REQUEST, timeout=httpx.Timeout(60, read=30)
    ) as response:
        for line in response.iter_lines():
            if line == "event: content_block_delta":
                deltas += 1
                if deltas == 2:
                    worker.signal(signal.SIGKILL)
                    killed_at = time.monotonic()
            elif line == "event: error" and killed_at:
                return time.monotonic() - killed_at
    raise RuntimeError("the stream ended without an error event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ccfleet-dead-"))
    server = EmbeddedRedis(root / "redis").start()
    claude = fake_cli.install(root / "claude", FAKE_CLI_MODE="stream_forever")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "CCFLEET_REDIS_URL": server.url,
        "CCFLEET_CLAUDE_BIN": str(claude),
        "CLAUDE_CODE_OAUTH_TOKEN": "bench-token",
        "CCFLEET_LOG_LEVEL": "WARNING",
        "CCFLEET_AUTH": "off",
        "CCFLEET_PREWARM_CLIS": "0",
        **dict(setting.split("=", 1) for setting in args.env),
    }
    port = free_port()
    api = ManagedProcess(["api", "--port", str(port)], env=env, log_path=root / "api.log")
    api_url = f"http://127.0.0.1:{port}"
    client = redis_lib.Redis.from_url(server.url)
    waits: list[float] = []
    try:
        wait_until(lambda: http_ok(f"{api_url}/health"), 30, "the front end")
        for i in range(args.repeats):
            worker = ManagedProcess(["worker"], env=env, log_path=root / f"worker{i}.log")
            wait_until(partial(registered, client, worker.pid), 30, "the worker's heartbeat")
            waits.append(seconds_to_error(api_url, worker))
            worker.stop()
    finally:
        api.stop()
        client.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"dead worker, {args.repeats} kills, {' '.join(args.env)} on {os.cpu_count()} cores,"
        f" load {os.getloadavg()[0]:.2f}, {time.ctime()}"
    )
    print(
        f"  kill -> event: error: median {statistics.median(waits):.2f} s"
        f" (min-max {min(waits):.2f}-{max(waits):.2f})"
    )


if __name__ == "__main__":
    main()
