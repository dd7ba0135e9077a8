"""One front-end process relaying many concurrent streams: chunk delivery latency, memory and
CPU per open stream.

`uv run python bench/many_streams.py [--streams 1000] [--chunks 10] [--interval-s 1.0]`

Starts an embedded Redis and one front end. A load generator in a child process plays the
workers: it claims each attempt the front end announces as an idle worker does
(JobQueue.claim), beats a heartbeat and publishes chunks with ChunkPublisher as
worker/job_function.py does - a message start, then `--chunks` text deltas `--interval-s`
apart whose text is the publish time, then the closing events (together, as a worker
publishes them). The clients (raw asyncio sockets in this process, on uvloop, to keep their
own cost small) open `--streams` streaming POST /v1/messages at once and time each delta
from its publish time to its arrival.
Prints delivery p50/p99/max, the front end's RSS per open stream and its CPU while relaying.
Target (issue 11): 1,000 streams with delivery p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import orjson
import uvloop
from redis.asyncio import Redis

from bench import loop_probe
from bench.idle_worker import cpu_seconds
from bench.spread import Figures, machine_line, percentile
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
from shared.process.collector import steady_collections
from shared.queue import arq_adapter
from shared.queue.job import AttemptId, JobRequest
from shared.queue.job_queue import JobQueue
from shared.services import FleetServices
from shared.settings import Settings
from tests.processes import ManagedProcess, http_ok, wait_until
from worker.context import WorkerState
from worker.heartbeat import beat
from worker.reply.chunk_publisher import ChunkPublisher

BODY = orjson.dumps(
    {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "Stream."}],
    }
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


# --- the load generator (child process) ---------------------------------------------------


def generator(redis_url: str, chunks: int, interval_s: float, log: str, probe_out: str) -> None:
    sys.stderr = open(log, "w")  # noqa: SIM115  # open for the process's whole life
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    probe = loop_probe.LoopProbe() if probe_out else None
    # One process plays a thousand workers: its full collections (~50 ms of CPU) would delay
    # publishes already stamped, a delay that is the bench's, not the front end's. It runs on
    # uvloop, as workers do (worker/main.py): on asyncio's own loop it needed ~0.45 of a core.
    with contextlib.suppress(KeyboardInterrupt), steady_collections():
        uvloop.run(play_workers(Settings(redis_url=redis_url), chunks, interval_s, probe))
    if probe is not None:
        Path(probe_out).write_text(json.dumps(probe.report()))


async def play_workers(
    settings: Settings, chunks: int, interval_s: float, probe: loop_probe.LoopProbe | None
) -> None:
    """Claim each attempt the front end announces, as an idle worker does (JobQueue.claim),
    and answer it; heartbeats keep the claiming "worker" alive for the relays' checks."""
    if probe is not None:
        probe.start()
    state = WorkerState("bench-generator", "bench", "bench", 1, "bench")
    services = FleetServices.build(settings)
    redis, queue = services.redis, services.queue
    answers: set[asyncio.Task[None]] = set()
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(redis_keys.queue_wake_channel())
    beating = asyncio.create_task(beat_forever(redis, state))
    try:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None or AttemptId.parse(message["data"].decode()) is None:
                continue
            attempt_id = message["data"].decode()
            claim = await queue.claim(
                attempt_id, worker_id=state.worker_id, account="bench", in_progress_ms=600_000
            )
            if claim.outcome == "claimed":
                task = asyncio.create_task(answer(redis, queue, attempt_id, chunks, interval_s))
                answers.add(task)
                task.add_done_callback(answers.discard)
    finally:
        beating.cancel()
        for task in answers:
            task.cancel()


async def beat_forever(redis: Redis, state: WorkerState) -> None:
    while True:
        await beat(redis, state, ttl_s=10)
        await asyncio.sleep(1)


async def answer(
    redis: Redis, queue: JobQueue, attempt_id: str, chunks: int, interval_s: float
) -> None:
    raw = await redis.get(arq_adapter.job_key(attempt_id))
    job = JobRequest.model_validate(arq_adapter.job_payload(raw))
    publisher = ChunkPublisher(redis, job.job_id, attempt=job.attempt, ttl_s=600, max_chunks=1000)
    message: dict[str, Any] = {
        "id": "msg_bench", "type": "message", "role": "assistant", "content": [],
        "model": job.request.model, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    }  # fmt: skip
    await publisher.publish_event({"type": "message_start", "message": message})
    block = {"type": "text", "text": ""}
    await publisher.publish_event({"type": "content_block_start", "index": 0,
                                   "content_block": block})  # fmt: skip
    # Workers answer out of step with each other: each stream starts at its own phase.
    await asyncio.sleep(random.uniform(0, interval_s))
    for _ in range(chunks):
        await asyncio.sleep(interval_s)
        delta = {"type": "text_delta", "text": f"{time.time():.6f};"}
        await publisher.publish_event({"type": "content_block_delta", "index": 0, "delta": delta})
    # The closing events together, as a worker publishes them once the CLI's result confirms them.
    await publisher.publish_events([
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "usage": {"output_tokens": 1},
         "delta": {"stop_reason": "end_turn", "stop_sequence": None}},
        {"type": "message_stop"},
    ])  # fmt: skip
    await queue.finish(job)


# --- the clients (this process) --------------------------------------------------------------


async def stream(port: int, delays: list[float], opened: asyncio.Event, counter: list[int],
                 total: int, failures: list[str]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
        + BODY
    )
    await writer.drain()
    counter[0] += 1
    if counter[0] == total:
        opened.set()
    status = await reader.readline()
    if b" 200 " not in status:
        failures.append(status.decode().strip() + " " + (await reader.read(300)).decode())
        writer.close()
        return
    # What arrived is read whole and timed at its arrival: a client's own line-by-line parsing
    # is not the front end's delay.
    pending = b""
    while data := await reader.read(1 << 16):
        arrived = time.time()
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and b"text_delta" in line:
                text = orjson.loads(line[6:])["delta"]["text"]
                delays.append(arrived - float(text.rstrip(";")))
            elif line.startswith(b"event: message_stop"):
                writer.close()
                return
    writer.close()


async def run_clients(
    port: int,
    streams: int,
    api_pid: int,
    failures: list[str],
    probe: loop_probe.LoopProbe | None,
    census: str | None = None,
) -> tuple[list[float], float, float, float]:
    delays: list[float] = []
    opened = asyncio.Event()
    counter = [0]
    idle_rss = rss_mb(api_pid)
    tasks = [asyncio.create_task(stream(port, delays, opened, counter, streams, failures))
             for _ in range(streams)]  # fmt: skip
    await opened.wait()
    if probe is not None:
        probe.start()
        os.kill(api_pid, signal.SIGUSR1)  # the front end's probe: from here on
    cpu_before, started = cpu_seconds(api_pid), time.monotonic()
    peak_rss = idle_rss
    census_at = started + float(census) if census and census != "end" else math.inf
    while not all(task.done() for task in tasks):
        ending = census == "end" and any(task.done() for task in tasks)
        if time.monotonic() > census_at or ending:
            os.kill(api_pid, signal.SIGUSR2)
            census_at, census = math.inf, None
        peak_rss = max(peak_rss, rss_mb(api_pid))
        await asyncio.sleep(0.2)
    await asyncio.gather(*tasks)
    if probe is not None:
        await probe.stop()
    elapsed_s = time.monotonic() - started
    cpu_s = cpu_seconds(api_pid) - cpu_before
    if probe is not None:
        print(f"  (streams open to the last one ended: {elapsed_s:.1f} s; the front end's "
              "probe measures on until it stops)", flush=True)  # fmt: skip
    return delays, (peak_rss - idle_rss) / streams, cpu_s / elapsed_s, 1000 * cpu_s / streams


@dataclass
class StreamsRun:
    delays_ms: list[float]
    mb_per_stream: float
    cpu_share: float
    cpu_ms_per_stream: float
    """The front end's CPU from the streams' start to their end, over the streams."""
    failures: list[str]
    probes: dict[str, str]
    """Per process probed (`--probe`): its loop lag and gc pauses (bench/loop_probe.py)."""


def front_end(
    port: int, env: dict[str, str], root: Path, args: argparse.Namespace
) -> ManagedProcess:
    if not args.probe:
        return ManagedProcess(["api", "--port", str(port)], env=env, log_path=root / "api.log")
    argv = ["--port", str(port), "--out", str(root / "api-probe.json")]
    argv += ["--cpython-gc"] if args.cpython_gc else []
    env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # for bench.*
    return ManagedProcess(argv, env=env, log_path=root / "api.log", module="bench.loop_probe")


def run_once(args: argparse.Namespace) -> StreamsRun:
    root = Path(tempfile.mkdtemp(prefix="ccfleet-streams-"))
    redis = EmbeddedRedis(root / "redis").start()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "CCFLEET_REDIS_URL": redis.url,
        "CCFLEET_LOG_LEVEL": "WARNING",
        "CCFLEET_AUTH": "off",
        "CCFLEET_INTERACTIVE_MAX_WAITING": str(args.streams * 2),
    }
    api = front_end(port, env, root, args)
    load_probe = str(root / "load-probe.json") if args.probe else ""
    load = multiprocessing.get_context("spawn").Process(
        target=generator,
        args=(redis.url, args.chunks, args.interval_s, str(root / "load.log"), load_probe),
    )
    client_probe = loop_probe.LoopProbe()
    try:
        load.start()
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 60, "the front end")
        failures: list[str] = []
        probe = client_probe if args.probe else None
        delays, mb_per_stream, cpu_share, cpu_ms = uvloop.run(
            run_clients(port, args.streams, api.pid, failures, probe, census=args.census)
        )
    finally:
        if load.pid is not None:
            os.kill(load.pid, 15)
        load.join(10)
        api.stop()
        redis.stop()
        probes = {"clients": loop_probe.summary(client_probe.report())} if args.probe else {}
        for name in ("api", "load"):
            if (found := root / f"{name}-probe.json").exists():
                probes[name] = loop_probe.summary(json.loads(found.read_text()))
        shutil.rmtree(root, ignore_errors=True)
    delays_ms = [1000 * d for d in delays]
    return StreamsRun(delays_ms, mb_per_stream, cpu_share, cpu_ms, failures, probes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5, help="runs, each on a fresh stack")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="measure each process's loop lag and gc pauses (bench/loop_probe.py)",
    )
    parser.add_argument(
        "--census",
        metavar="S|end",
        help="with --probe: count the front end's objects S seconds in, or when the first "
        "stream ends (a stall of its own)",
    )
    parser.add_argument(
        "--cpython-gc",
        action="store_true",
        help="with --probe: the front end on CPython's collector defaults",
    )
    parser.add_argument("--figures", type=Path, help="save the figures here (bench/perf.py)")
    args = parser.parse_args()
    if (args.census is not None or args.cpython_gc) and not args.probe:
        parser.error("--census and --cpython-gc go with --probe")
    print(f"{args.streams} concurrent streams through one front end, a chunk every "
          f"{args.interval_s:g} s, {args.chunks} chunks each, {args.runs} runs; "
          f"{machine_line()}", flush=True)  # fmt: skip
    figures = Figures()
    for number in range(1, args.runs + 1):
        run = run_once(args)
        ms = run.delays_ms or [math.nan]
        p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
        print(f"run {number}: {len(run.delays_ms)} of {args.streams * args.chunks} chunks; "
              f"delivery ms p50 {p50:.1f} p99 {p99:.1f} max {max(ms):.1f}; "
              f"{1024 * run.mb_per_stream:.0f} KB per stream; "
              f"CPU {100 * run.cpu_share:.0f} % of a core, "
              f"{run.cpu_ms_per_stream:.2f} ms a stream", flush=True)  # fmt: skip
        if run.failures:
            print(f"  {len(run.failures)} requests failed, the first: {run.failures[0]}")
        for name, line in run.probes.items():
            print(f"  {name}: {line}", flush=True)
        label = f"{args.streams:,} streams, delivery"
        figures.add(f"{label} p50", p50)
        figures.add(f"{label} p99", p99, target="median ≤ 50 ms, none > 100")
        figures.add(f"{label} max", max(ms))
        figures.add(f"{label}: memory per open stream", 1024 * run.mb_per_stream, unit="KB",
                    digits=0)  # fmt: skip
        figures.add(f"{label}: front end CPU", 100 * run.cpu_share, unit="% of a core", digits=0)
        figures.add(f"{label}: front end CPU per stream", run.cpu_ms_per_stream, unit="ms",
                    digits=2)  # fmt: skip
    figures.print()
    if args.figures:
        figures.save(args.figures)


if __name__ == "__main__":
    main()
