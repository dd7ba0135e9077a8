"""A private ccfleet for a benchmark, started and torn down as the tests do: an embedded Redis,
the in-process FakeUpstream answering through `responder`, the real CLI with a fake OAuth token,
and front ends and workers as child processes.

    parser.add_argument("--claude-bin", default=default_claude_bin())
    claude_bin = found_claude_bin(parser, args.claude_bin)
    with bench_stack(responder) as stack:
        url, worker_pids = stack.start(stack.env(claude_bin, CCFLEET_WORKER_SLOTS="4"), workers=1)

Ctrl-C or SIGTERM stops it as cleanly as the end of the block; on an error the processes' last
log lines are printed before the error is raised again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_lib

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
from tests.fakes.upstream import FakeUpstream, Responder
from tests.processes import ManagedProcess, http_ok, wait_until


def default_claude_bin() -> str:
    return os.environ.get("CCFLEET_TEST_CLAUDE_BIN") or shutil.which("claude") or "claude"


def found_claude_bin(parser: argparse.ArgumentParser, given: str) -> str:
    """`--claude-bin` as an absolute path; the command line refused if there is no such CLI."""
    if not (found := shutil.which(given)):
        parser.error(f"no claude CLI at {given!r}: give --claude-bin PATH")
    return os.path.abspath(found)


@dataclass
class BenchStack:
    root: Path
    redis: EmbeddedRedis
    upstream: FakeUpstream
    procs: list[ManagedProcess] = field(default_factory=list)
    starts: int = 0

    def env(self, claude_bin: str, **settings: str) -> dict[str, str]:
        """The environment of the stack's processes: what every benchmark sets, then
        `settings` (CCFLEET_WORKER_SLOTS, CCFLEET_RESIDENT_MAX...)."""
        return {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", "CCFLEET_REDIS_URL": self.redis.url,
            "CCFLEET_CLAUDE_BIN": claude_bin, "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5",
            "CCFLEET_AUTH": "off", "ANTHROPIC_BASE_URL": self.upstream.url,
            "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake",
            "CLAUDE_CONFIG_DIR": str(self.root / "claude-config"),
            "CCFLEET_WORK_ROOT": str(self.root / "work"),
            **settings,
        }  # fmt: skip

    def start(self, env: dict[str, str], workers: int) -> tuple[str, list[int]]:
        """`workers` workers and one front end; its URL once it is ready and every worker
        beats, and the workers' pids."""
        self.starts += 1
        port, logs = free_port(), self.root / f"start-{self.starts}"
        logs.mkdir()
        started = [
            ManagedProcess(["worker"], env=env, log_path=logs / f"worker-{i}.log")
            for i in range(workers)
        ]
        self.procs += started
        api = ["api", "--port", str(port)]
        self.procs.append(ManagedProcess(api, env=env, log_path=logs / "api.log"))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{url}/ready"), 60.0, f"{url}/ready")
        wait_until(lambda: len(heartbeats(self.redis.url)) == workers, 30, "workers")
        return url, [p.pid for p in started]

    def stop_processes(self) -> None:
        """Stop the front ends and workers (Redis and the upstream stay), last started first."""
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


@contextmanager
def bench_stack(responder: Responder) -> Iterator[BenchStack]:
    for signum in (signal.SIGINT, signal.SIGTERM):  # both clean up as Ctrl-C does
        signal.signal(signum, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="ccfleet-bench-"))
    (root / "claude-config").mkdir()
    stack = BenchStack(root, EmbeddedRedis(root / "redis"), FakeUpstream())
    try:
        stack.redis.start()
        stack.upstream.start()
        stack.upstream.set_responder(responder)
        yield stack
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
    except Exception:
        for proc in stack.procs:
            print(
                f"--- {proc.log_path.relative_to(root)}\n{proc.log_text()[-3000:]}", file=sys.stderr
            )
        raise
    finally:
        stack.stop_processes()
        stack.upstream.stop()
        stack.redis.stop()
        shutil.rmtree(root, ignore_errors=True)


def heartbeats(redis_url: str) -> list[dict[bytes, bytes]]:
    """The heartbeats of the workers in the fleet."""
    client = redis_lib.Redis.from_url(redis_url)
    try:
        ids = client.zrange(redis_keys.workers_index(), 0, -1)
        return [client.hgetall(redis_keys.worker_heartbeat(i.decode())) for i in ids]  # type: ignore[misc, union-attr]  # redis-py 5 types replies sync-or-async
    finally:
        client.close()
