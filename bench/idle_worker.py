"""What an idle worker costs: CPU and Redis commands per second, heartbeats included.

`uv run python bench/idle_worker.py [--seconds 10] [--runs 3] [--env NAME=VALUE ...]
[--claude-bin PATH]`

Starts an embedded Redis and one `ccfleet worker` (no job is ever queued; `--env` adds to its
environment, e.g. a heartbeat interval to compare), lets it settle for
3 s, then over `--runs` windows of `--seconds` each reads the worker process's CPU time
(/proc/PID/stat, utime+stime) and Redis's total command count (INFO stats
`total_commands_processed`, less the bench's own INFO calls). Prints CPU as % of one core and
commands per second, per window and as the median and range. Targets (issue 11): <= 1 % CPU,
<= 20 commands/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import redis as redis_lib

from bench.spread import Figures, machine_line
from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests.processes import ManagedProcess, wait_until

SETTLE_S = 3.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def commands_processed(client: redis_lib.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])  # type: ignore[index]  # redis-py 5 types replies sync-or-async


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each window")
    parser.add_argument("--runs", type=int, default=3, help="windows measured one after another")
    parser.add_argument("--figures", type=Path, help="save the figures here (bench/perf.py)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--claude-bin", default=os.environ.get("CCFLEET_TEST_CLAUDE_BIN", "claude"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ccfleet-idle-"))
    server = EmbeddedRedis(root / "redis").start()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "CCFLEET_REDIS_URL": server.url,
        "CCFLEET_CLAUDE_BIN": args.claude_bin,
        "CLAUDE_CODE_OAUTH_TOKEN": "bench-token",
        "CCFLEET_LOG_LEVEL": "WARNING",
        "CCFLEET_AUTH": "off",
        **dict(setting.split("=", 1) for setting in args.env),
    }
    worker = ManagedProcess(["worker"], env=env, log_path=root / "worker.log")
    client = redis_lib.Redis.from_url(server.url)
    figures = Figures()
    try:
        wait_until(
            lambda: client.zcard(redis_keys.workers_index()) > 0,  # type: ignore[operator]  # redis-py 5 types replies sync-or-async
            30,
            "the worker's heartbeat",
        )
        time.sleep(SETTLE_S)
        print(f"idle worker, {args.runs} windows of {args.seconds:g} s; {machine_line()}")
        for number in range(1, args.runs + 1):
            cpu_share, commands_per_s = measure_window(worker.pid, client, args.seconds)
            print(f"window {number}: CPU {cpu_share:.2f} % of a core; "
                  f"Redis commands {commands_per_s:.1f} /s", flush=True)  # fmt: skip
            figures.add("idle worker: CPU", cpu_share, unit="% of a core", target="≤ 1 %", digits=2)
            figures.add("idle worker: Redis commands", commands_per_s, unit="/s", target="≤ 20 /s")
    finally:
        worker.stop()
        client.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    figures.print()
    if args.figures:
        figures.save(args.figures)


def measure_window(pid: int, client: redis_lib.Redis, seconds: float) -> tuple[float, float]:
    """The worker's CPU (% of one core) and Redis's commands per second over `seconds`."""
    cpu_before, commands_before = cpu_seconds(pid), commands_processed(client)
    time.sleep(seconds)
    cpu_after, commands_after = cpu_seconds(pid), commands_processed(client)
    own_info_calls = 1  # the second INFO counts itself
    commands = commands_after - commands_before - own_info_calls
    return 100 * (cpu_after - cpu_before) / seconds, commands / seconds


if __name__ == "__main__":
    main()
