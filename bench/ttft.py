"""Time to first token (TTFT) through ccfleet vs. the same `claude` CLI run directly.

`uv run python bench/ttft.py --requests 20 [--claude-bin PATH] [--concurrency 1]`

Starts a private stack as the tests do (bench/stack.py: embedded Redis; in-process FakeUpstream
answering 44 chars in 8-char chunks, no delay; one worker and one front end as child processes;
a fake OAuth token), then alternates two kinds of run (ccfleet, direct, ccfleet, ...) after one
warm-up of each. TTFT is ccfleet's one definition (shared/telemetry/first_token.py: to the first
`content_block_delta`), timed from the client's side:

- ccfleet: streaming POST /v1/messages (raw SSE): send -> first token (TTFT), -> message_stop.
- direct: the CLI with the worker's argv, env and stdin (worker.cli.command), fresh cwd + TMPDIR:
  spawn -> first token's stream_event (TTFT), -> `result` line (the worker releases
  message_stop only after `result`, so the totals compare).

"overhead" = ccfleet - direct per pair (i-th run of each kind), then summarised. The upstream runs
in this process and stamps each run's request (a marker in the prompt), splitting TTFT into
"-> upstream" (queue + spawn + CLI start) and "upstream -> 1st delta" (CLI + relay); the paired
difference of the latter is the gateway's relay cost for one chunk (CLI stdout -> worker -> Redis
-> front end -> client). p99 is nearest-rank (the maximum below 100 runs). Milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
import redis as redis_lib

from bench.spread import Figures, machine_line
from bench.stack import BenchStack, bench_stack, default_claude_bin, found_claude_bin
from shared.broker import redis_keys
from shared.telemetry.first_token import is_token_event
from shared.wire.messages import MessagesRequest
from tests.fakes.upstream import RecordedRequest, TextReply
from tests.processes import cli_processes
from worker.cli import command as cc
from worker.cli.process import CliProcess
from worker.cli.workspace import job_workspace, private_directory
from worker.main import private_cli_environment

REPLY = "The quick brown fox jumps over the lazy dog."  # 44 chars, 6 chunks of 8
MODEL = "claude-sonnet-5-5"
RUN_TIMEOUT_S = 60.0
MARKER = re.compile(r"bench-[0-9a-f]{32}")
arrivals: dict[str, float] = {}  # marker -> perf_counter when its request reached the upstream


@dataclass
class Sample:
    ttft: float
    total: float
    to_upstream: float
    upstream_to_delta: float
    job_id: str = ""


def responder(request: RecordedRequest) -> TextReply:
    now = time.perf_counter()
    if found := MARKER.search(json.dumps(request.body)):
        arrivals.setdefault(found.group(0), now)
    return TextReply(REPLY, chunk_chars=8)


def body(marker: str) -> dict[str, Any]:
    message = {"role": "user", "content": f"{marker}: say something short."}
    return {"model": MODEL, "max_tokens": 256, "stream": True, "messages": [message]}


def sample(marker: str, t0: float, first: float | None, end: float | None) -> Sample:
    if first is None or end is None:
        raise RuntimeError(f"{marker}: stream ended without a token or end")
    up = arrivals.pop(marker, math.nan)
    ms = 1000.0
    return Sample((first - t0) * ms, (end - t0) * ms, (up - t0) * ms, (first - up) * ms)


async def via_ccfleet(client: httpx.AsyncClient, url: str) -> Sample:
    marker = f"bench-{uuid.uuid4().hex}"
    first = end = None
    t0 = time.perf_counter()
    job_id = ""
    async with client.stream("POST", f"{url}/v1/messages", json=body(marker)) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("id:") and not job_id:
                job_id = line[3:].strip().rpartition(":")[0]
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if first is None and is_token_event(event.get("type")):
                first = time.perf_counter()
            if event.get("type") == "message_stop":
                end = time.perf_counter()
                break
    result = sample(marker, t0, first, end)
    result.job_id = job_id
    return result


def dispatch_ms(redis_url: str, samples: list[Sample]) -> list[float]:
    """Per job: the front end starts queueing it -> the worker hands it to a CLI (its first
    set-up line), from the two times the job's record keeps to the microsecond."""
    client = redis_lib.Redis.from_url(redis_url)
    try:
        figures = []
        for s in samples:
            record: dict[bytes, bytes] = client.hgetall(redis_keys.job_record(s.job_id))  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
            if b"handed_off_at_ms" in record:
                submitted = float(record[b"enqueued_at_ms"])
                figures.append(float(record[b"handed_off_at_ms"]) - submitted)
        return figures
    finally:
        client.close()


async def direct(claude_bin: str, base_env: dict[str, str], root: Path) -> Sample:
    """Spawned, fed and stopped as worker/reply/answer.py does (CliProcess, job_workspace)."""
    marker = f"bench-{uuid.uuid4().hex}"
    request = MessagesRequest.model_validate(body(marker))
    first = end = None
    with job_workspace(str(root), marker[6:]) as workspace:
        shape = cc.spawn_shape(request, bare=cc.uses_api_key(base_env))
        env = cc.cli_environment(base_env, workspace.tmp_dir, shape, home=workspace.home)
        argv = cc.cli_argv(claude_bin, shape)
        t0 = time.perf_counter()
        async with CliProcess(argv, env=env, cwd=workspace.cwd, kill_grace_s=0.5) as proc:
            for line in cc.stdin_lines(request):  # one user line: no history to acknowledge
                await proc.write_line(line.payload)
            proc.close_stdin()
            while (message := await proc.read_message()) is not None:
                kind, event = message.get("type"), message.get("event") or {}
                if first is None and kind == "stream_event" and is_token_event(event.get("type")):
                    first = time.perf_counter()
                elif kind == "result":
                    end = time.perf_counter()
                    break
            await proc.wait_exit(0.5)  # then SIGTERM to the group, as the worker does
    return sample(marker, t0, first, end)


def parent_pid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return -1


async def settle(claude_bin: str, worker_pid: int, ready: int) -> None:
    """Before the next run, so runs do not share the CPU: the worker's CLIs that answered have
    exited, and the `ready` ones it keeps have finished starting (their CPU time stands still)."""
    last: list[int] = []
    for _ in range(100):  # at most ~10 s
        await asyncio.sleep(0.1)
        mine = [pid for pid in cli_processes(claude_bin) if parent_pid(pid) == worker_pid]
        ticks = [cpu_ticks(pid) for pid in mine]
        if len(mine) <= ready and ticks == last:
            return
        last = ticks


async def measure(args: argparse.Namespace, url: str, base_env: dict[str, str], root: Path,
                  worker_pid: int) -> tuple[list[Sample], list[Sample]]:  # fmt: skip
    gateway: list[Sample] = []
    cli: list[Sample] = []
    timeout = httpx.Timeout(RUN_TIMEOUT_S)
    async with httpx.AsyncClient(timeout=timeout) as client, asyncio.timeout(args.max_seconds):
        rounds = [1] + [min(args.concurrency, args.requests - i)
                        for i in range(0, args.requests, args.concurrency)]  # fmt: skip
        for index, width in enumerate(rounds):  # round 0 is the warm-up
            async with asyncio.timeout(RUN_TIMEOUT_S * 2):
                a = await asyncio.gather(*(via_ccfleet(client, url) for _ in range(width)))
                await settle(args.claude_bin, worker_pid, args.prewarm)
                b = await asyncio.gather(
                    *(direct(args.claude_bin, base_env, root) for _ in range(width))
                )
            if index:
                gateway += a
                cli += b
                print(f"{len(cli)}/{args.requests} pairs", file=sys.stderr, flush=True)
    return gateway, cli


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def ready_cli_report(redis_url: str, claude_bin: str, worker_pid: int) -> str:
    """Hit rate from the worker's heartbeat; memory of the CLIs it keeps ready (RSS, idle)."""
    client = redis_lib.Redis.from_url(redis_url)
    try:
        (worker_id,) = client.zrange(redis_keys.workers_index(), 0, -1)  # type: ignore[misc]  # redis-py 5 types replies sync-or-async
        beat: dict[bytes, bytes] = client.hgetall(redis_keys.worker_heartbeat(worker_id.decode()))  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
    finally:
        client.close()
    hits, misses = int(beat[b"ready_hits"]), int(beat[b"ready_misses"])
    ready = [pid for pid in cli_processes(claude_bin) if parent_pid(pid) == worker_pid]
    memory = ", ".join(f"{rss_mb(pid):.0f} MB" for pid in ready) or "none ready"
    rate = 100 * hits / max(1, hits + misses)
    return f"ready CLIs: hit rate {rate:.0f} % ({hits} of {hits + misses}); RSS each: {memory}"


def row(label: str, values: list[float]) -> str:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return f"{label:<44}{'n/a':>9}"
    p99 = values[max(0, math.ceil(0.99 * len(values)) - 1)]
    figures = (statistics.median(values), p99, statistics.fmean(values))
    return f"{label:<44}" + "".join(f"{v:9.1f}" for v in figures)


def add_figures(
    figures: Figures, gateway: list[Sample], cli: list[Sample], dispatch: list[float]
) -> str:
    """One run's medians into `figures`; the run's line."""
    ours = statistics.median(s.ttft for s in gateway)
    direct = statistics.median(s.ttft for s in cli)
    relay = statistics.median(a.upstream_to_delta - b.upstream_to_delta
                              for a, b in zip(gateway, cli, strict=True))  # fmt: skip
    handoff = statistics.median(dispatch) if dispatch else math.nan
    figures.add("time to first text through ccfleet, p50", ours)
    figures.add("time to first text, the CLI spawned directly, p50", direct)
    figures.add("ratio at p50 (ccfleet / direct)", ours / direct, unit="", target="≤ 0.5",
                digits=2)  # fmt: skip
    figures.add("dispatch, enqueue → CLI hand-off, p50", handoff, target="≤ 2 ms", digits=2)
    figures.add("relay of the first chunk (paired difference), p50", relay)
    return (
        f"TTFT p50 ccfleet {ours:.1f} ms, direct {direct:.1f} ms, ratio {ours / direct:.2f}; "
        f"dispatch p50 {handoff:.2f} ms; relay of the 1st chunk p50 {relay:.1f} ms"
    )


def report(
    gateway: list[Sample], cli: list[Sample], version: str, conc: int, dispatch: list[float]
) -> None:
    def diff(field: str) -> list[float]:
        return [getattr(a, field) - getattr(b, field) for a, b in zip(gateway, cli, strict=True)]

    print(f"\nmachine: nproc={os.cpu_count()}  CLI {version}  pairs={len(gateway)}  "
          f"concurrency={conc}  reply={len(REPLY)} chars in 8-char chunks")  # fmt: skip
    print(f"{'(milliseconds)':<44}{'p50':>9}{'p99':>9}{'mean':>9}")
    for label, values in [
        ("TTFT  ccfleet (send -> 1st token)", [s.ttft for s in gateway]),
        ("TTFT  direct CLI (spawn -> 1st token)", [s.ttft for s in cli]),
        ("TTFT  overhead (ccfleet - direct, paired)", diff("ttft")),
        ("total ccfleet (send -> message_stop)", [s.total for s in gateway]),
        ("total direct CLI (spawn -> result)", [s.total for s in cli]),
        ("total overhead (paired)", diff("total")),
        ("ccfleet: send -> upstream request", [s.to_upstream for s in gateway]),
        ("direct:  spawn -> upstream request", [s.to_upstream for s in cli]),
        ("ccfleet: upstream request -> 1st delta", [s.upstream_to_delta for s in gateway]),
        ("direct:  upstream request -> 1st delta", [s.upstream_to_delta for s in cli]),
        ("relay overhead, 1st chunk (paired diff)", diff("upstream_to_delta")),
        ("dispatch: enqueue -> CLI gets the request", dispatch),
    ]:
        print(row(label, values))
    print("per-pair TTFT overhead:", " ".join(f"{v:.0f}" for v in diff("ttft")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="measured runs of each kind")
    parser.add_argument("--claude-bin", default=default_claude_bin())
    parser.add_argument("--concurrency", type=int, default=1, help="runs of a kind at once")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="bound on measuring")
    parser.add_argument("--prewarm", type=int, default=1, help="CCFLEET_PREWARM_CLIS of the worker")
    parser.add_argument("--runs", type=int, default=3, help="runs of --requests pairs each")
    parser.add_argument("--figures", type=Path, help="save the figures here (bench/perf.py)")
    args = parser.parse_args()
    args.claude_bin = found_claude_bin(parser, args.claude_bin)
    with bench_stack(responder) as stack:
        env = stack.env(
            args.claude_bin,
            CCFLEET_WORKER_SLOTS=str(max(2, args.concurrency)),
            CCFLEET_PREWARM_CLIS=str(args.prewarm),
            # Each run is a new conversation: a CLI kept for a next turn would only hold memory
            # (and `settle` waits for the worker's CLIs to come down to the ready ones).
            CCFLEET_RESIDENT_MAX="0",
            CCFLEET_PING_INTERVAL_S="1",
            CCFLEET_LOG_LEVEL="INFO",
        )
        url, (worker,) = stack.start(env, workers=1)
        measure_all(args, stack, env, url, worker)


def measure_all(
    args: argparse.Namespace, stack: BenchStack, env: dict[str, str], url: str, worker: int
) -> None:
    """`--runs` runs of `--requests` pairs: each run's figures, then all of them together."""
    root, redis_url = stack.root, stack.redis.url
    private_dir = private_directory(str(root / "direct"))
    base_env, _ = private_cli_environment(env, private_dir)  # as the worker's CLIs get it
    version = subprocess.run(
        [args.claude_bin, "--version"], capture_output=True, text=True, timeout=30,
        env=cc.cli_environment(base_env, str(root)),
    ).stdout.strip()  # fmt: skip
    print(f"time to first text, {args.runs} runs of {args.requests} pairs; CLI {version}; "
          f"{machine_line()}", flush=True)  # fmt: skip
    figures = Figures()
    gateway: list[Sample] = []
    cli: list[Sample] = []
    for number in range(1, args.runs + 1):
        ours, direct = asyncio.run(measure(args, url, base_env, root, worker))
        line = add_figures(figures, ours, direct, dispatch_ms(redis_url, ours))
        print(f"run {number}: {line}", flush=True)
        gateway += ours
        cli += direct
    print(f"\nall {len(gateway)} pairs together:", end="")
    report(gateway, cli, version, args.concurrency, dispatch_ms(redis_url, gateway))
    print(ready_cli_report(redis_url, args.claude_bin, worker))
    figures.print()
    if args.figures:
        figures.save(args.figures)


if __name__ == "__main__":
    main()
