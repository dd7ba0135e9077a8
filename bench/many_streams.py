"""One front-end process relaying many concurrent streams: chunk delivery latency, memory and
CPU per open stream.

`uv run python bench/many_streams.py [--streams 1000] [--chunks 10] [--interval-s 1.0]`

Starts an embedded Redis and one front end. A load generator in a child process plays the
workers: it claims each attempt the front end announces as an idle worker does
(JobQueue.claim), beats a heartbeat and publishes chunks with ChunkPublisher as
worker/job_function.py does - a message start, then `--chunks` text deltas `--interval-s`
apart whose text is the
publish time, then the stop events.
The clients (raw asyncio sockets in this process, to keep their own cost small) open `--streams`
streaming POST /v1/messages at once and time each delta from its publish time to its arrival.
Prints delivery p50/p99/max, the front end's RSS per open stream and its CPU while relaying.
Target (issue 11): 1,000 streams with delivery p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import orjson
from redis.asyncio import Redis

from bench.idle_worker import cpu_seconds
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
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


def generator(redis_url: str, chunks: int, interval_s: float, log: str) -> None:
    sys.stderr = open(log, "w")  # noqa: SIM115  # open for the process's whole life
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(play_workers(Settings(redis_url=redis_url), chunks, interval_s))


async def play_workers(settings: Settings, chunks: int, interval_s: float) -> None:
    """Claim each attempt the front end announces, as an idle worker does (JobQueue.claim),
    and answer it; heartbeats keep the claiming "worker" alive for the relays' checks."""
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
    await publisher.publish_event({"type": "content_block_stop", "index": 0})
    await publisher.publish_event({"type": "message_delta", "usage": {"output_tokens": 1},
                                   "delta": {"stop_reason": "end_turn",
                                             "stop_sequence": None}})  # fmt: skip
    await publisher.publish_event({"type": "message_stop"})
    await queue.finish(job)


# --- the clients (this process) --------------------------------------------------------------


async def stream(port: int, delays: list[float], opened: asyncio.Event, counter: list[int],
                 total: int, failures: list[str]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
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
    while line := await reader.readline():
        if not line.startswith(b"data: ") or b"text_delta" not in line:
            if line.startswith(b"event: message_stop"):
                break
            continue
        text = orjson.loads(line[6:])["delta"]["text"]
        delays.append(time.time() - float(text.rstrip(";")))
    writer.close()


async def run_clients(
    port: int, streams: int, api_pid: int, failures: list[str]
) -> tuple[list[float], float, float]:
    delays: list[float] = []
    opened = asyncio.Event()
    counter = [0]
    idle_rss = rss_mb(api_pid)
    tasks = [asyncio.create_task(stream(port, delays, opened, counter, streams, failures))
             for _ in range(streams)]  # fmt: skip
    await opened.wait()
    cpu_before, started = cpu_seconds(api_pid), time.monotonic()
    peak_rss = idle_rss
    while not all(task.done() for task in tasks):
        peak_rss = max(peak_rss, rss_mb(api_pid))
        await asyncio.sleep(0.2)
    await asyncio.gather(*tasks)
    cpu_share = (cpu_seconds(api_pid) - cpu_before) / (time.monotonic() - started)
    return delays, (peak_rss - idle_rss) / streams, cpu_share


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--interval-s", type=float, default=1.0)
    args = parser.parse_args()
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
    api = ManagedProcess(["api", "--port", str(port)], env=env, log_path=root / "api.log")
    load = multiprocessing.get_context("spawn").Process(
        target=generator,
        args=(redis.url, args.chunks, args.interval_s, str(root / "load.log")),
    )
    try:
        load.start()
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 60, "the front end")
        failures: list[str] = []
        delays, mb_per_stream, cpu_share = asyncio.run(
            run_clients(port, args.streams, api.pid, failures)
        )
    finally:
        if load.pid is not None:
            os.kill(load.pid, 15)
        load.join(10)
        api.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    if failures:
        print(f"{len(failures)} requests failed, the first: {failures[0]}")
    ms = [1000 * d for d in delays] or [math.nan]
    expected = args.streams * args.chunks
    print(f"{args.streams} concurrent streams through one front end on {os.cpu_count()} cores, "
          f"{time.ctime()}: {len(ms)} of {expected} chunks delivered")  # fmt: skip
    print(f"  delivery (publish -> client) ms: p50 {percentile(ms, 0.5):.1f}  "
          f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}")  # fmt: skip
    print(f"  front end memory per open stream: {1024 * mb_per_stream:.0f} KB; "
          f"CPU while relaying: {100 * cpu_share:.0f} % of one core")  # fmt: skip


if __name__ == "__main__":
    main()
