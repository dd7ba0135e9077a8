"""What an idle worker costs: CPU and Redis commands per second, heartbeats included.

`uv run python bench/idle_worker.py [--seconds 20] [--repeats 5] [--env NAME=VALUE ...]
[--claude-bin PATH]`

Starts an embedded Redis and one `ccfleet worker` (no job is ever queued; `--env` adds to its
environment, e.g. a heartbeat interval to compare), lets it settle for 3 s, then measures
`--repeats` consecutive windows of `--seconds` each: the worker process's CPU time
(/proc/PID/stat, utime+stime) and the commands Redis ran (INFO commandstats, less the bench's
own INFO calls). Prints CPU as % of one core and commands per second, median and min-max over
the windows, and the commands the median window ran, per second. Targets (issues 11 and 19):
<= 1 % CPU, <= 20 commands/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import redis as redis_lib

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests.processes import ManagedProcess, wait_until

SETTLE_S = 3.0


@dataclass(frozen=True)
class Window:
    cpu_percent: float
    commands_per_s: dict[str, float]

    @property
    def total_per_s(self) -> float:
        return sum(self.commands_per_s.values())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def command_calls(client: redis_lib.Redis) -> dict[str, int]:
    """Calls so far by command (this INFO itself is counted by the next one)."""
    stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
    return {name.removeprefix("cmdstat_"): fields["calls"] for name, fields in stats.items()}


def measure(pid: int, client: redis_lib.Redis, seconds: float) -> Window:
    cpu_before, calls_before = cpu_seconds(pid), command_calls(client)
    time.sleep(seconds)
    cpu_after, calls_after = cpu_seconds(pid), command_calls(client)
    calls = {name: n - calls_before.get(name, 0) for name, n in calls_after.items()}
    calls["info"] -= 1  # the bench's INFO at the window's start
    return Window(
        cpu_percent=100 * (cpu_after - cpu_before) / seconds,
        commands_per_s={name: n / seconds for name, n in calls.items() if n},
    )


def spread(values: list[float], unit: str) -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"median {median:.2f}{unit} (min-max {low:.2f}-{high:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="one window")
    parser.add_argument("--repeats", type=int, default=5, help="windows")
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
    try:
        wait_until(
            lambda: client.zcard(redis_keys.workers_index()) > 0,  # type: ignore[operator]  # redis-py 5 types replies sync-or-async
            30,
            "the worker's heartbeat",
        )
        time.sleep(SETTLE_S)
        windows = [measure(worker.pid, client, args.seconds) for _ in range(args.repeats)]
    finally:
        worker.stop()
        client.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"idle worker, {args.repeats} windows of {args.seconds:.0f} s, {' '.join(args.env)}"
        f" on {os.cpu_count()} cores, load {load:.2f}, {time.ctime()}"
    )
    print(f"  cpu: {spread([w.cpu_percent for w in windows], ' %')} of one core")
    print(f"  redis commands: {spread([w.total_per_s for w in windows], ' /s')}")
    typical = sorted(windows, key=lambda w: w.total_per_s)[len(windows) // 2]
    by_rate = sorted(typical.commands_per_s.items(), key=lambda item: -item[1])
    print("  of which (median window): " + ", ".join(f"{n} {r:.2f}" for n, r in by_rate))


if __name__ == "__main__":
    main()
