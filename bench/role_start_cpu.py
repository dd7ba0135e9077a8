"""What starting a test stack's role processes costs: CPU seconds of a worker and a front end
from their start until the front end's /ready answers, started with `python -m ccfleet` (as
before the role zygote) and forked from the zygote (tests/role_forks.py), turn about.

`uv run python bench/role_start_cpu.py [--runs 5] [--claude-bin PATH]`

Each run starts an embedded Redis's worker and front end as the tests' Stack does (its
environment's start-up settings), waits for /ready, reads both processes' utime+stime from
/proc/PID/stat, then stops them. The zygote's own import, paid once per pytest process, is
printed apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

from bench.idle_worker import cpu_seconds
from bench.spread import Figures, machine_line
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from tests.fakes.upstream import FakeUpstream
from tests.processes import ManagedProcess, http_ok, wait_until
from tests.role_forks import RoleForks


def start_cpu_s(env: dict[str, str], root: Path, forks: RoleForks | None) -> float:
    """Both roles' CPU seconds from their start to /ready."""
    port = free_port()
    roles = [
        ManagedProcess(["worker"], env=env, log_path=root / "worker.log", forks=forks),
        ManagedProcess(
            ["api", "--port", str(port)], env=env, log_path=root / "api.log", forks=forks
        ),
    ]
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/ready"), 60, "/ready")
        return sum(cpu_seconds(role.pid) for role in roles)
    finally:
        for role in roles:
            role.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts of each kind")
    parser.add_argument("--claude-bin", default=os.environ.get("CCFLEET_TEST_CLAUDE_BIN", "claude"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ccfleet-role-start-"))
    (root / "home").mkdir()
    forks = RoleForks()
    figures = Figures()
    try:
        with EmbeddedRedis(root / "redis") as server, FakeUpstream() as upstream:
            env = {
                "PATH": os.environ["PATH"], "HOME": str(root / "home"), "LANG": "C.UTF-8",
                "CCFLEET_REDIS_URL": server.url, "CCFLEET_CLAUDE_BIN": args.claude_bin,
                "CCFLEET_PREWARM_CLIS": "0", "CCFLEET_RESIDENT_MAX": "0", "CCFLEET_AUTH": "off",
                "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5", "ANTHROPIC_BASE_URL": upstream.url,
                "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake",
                "CCFLEET_WORK_ROOT": str(root / "work"),
            }  # fmt: skip
            print(f"worker + front end to /ready, {args.runs} starts each; {machine_line()}")
            for number in range(1, args.runs + 1):
                started = start_cpu_s(env, root, None)
                forked = start_cpu_s(env, root, forks)
                print(f"run {number}: python -m {started:.2f} CPU-s, forked {forked:.2f} CPU-s",
                      flush=True)  # fmt: skip
                figures.add("stack start: python -m", started, unit="CPU-s", digits=2)
                figures.add("stack start: forked", forked, unit="CPU-s", digits=2)
        print(f"the zygote's own start (once a test process): {cpu_seconds(forks.pid):.2f} CPU-s")
    finally:
        forks.close()
        shutil.rmtree(root, ignore_errors=True)
    figures.print()


if __name__ == "__main__":
    main()
