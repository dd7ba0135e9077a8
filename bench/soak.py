"""Soak test under chaos: do requests come back answered or properly failed while things break?

`uv run python bench/soak.py --requests 60 --seconds 240 [--claude-bin PATH] [--concurrency 6]
[--seed 1] [--chaos kill,redis,drop[,failover]] [--chaos-min 2] [--chaos-max 6] [--redis-down 0-2]
[--verbose] [--keep]`

Starts a private stack on loopback: an embedded Redis with persistence (AOF) on a fixed port,
an in-process FakeUpstream, 2 front ends and 3 workers (2 slots each, accounts soak-a/b/c) with
the real CLI (default: the pinned one tests/run.sh installs). Sends N requests (mixed streaming /
non-streaming, random front end, at most --concurrency at once, client timeout 90 s). Request i
asks for a unique marker (`soak<i>x<hex>`); the upstream finds it in the last user message and
answers exactly `answer:<marker>.` in 3-character chunks spread over a random 0.5-4 s. A slot
whose request got an HTTP error with `retry-after` waits that long (at most 5 s) before its next
request, as a polite client would (the failed request itself is not retried), so one outage
does not burn through all remaining requests in a second.

Meanwhile a chaos loop, every --chaos-min..--chaos-max s, does one of (drawn from a shuffled bag
of 2 kills, 1 Redis restart, 2 drops): SIGKILL a random worker and start a replacement with the
same account; restart Redis (SIGTERM, --redis-down s down, start on the same port and data dir: the
AOF keeps queued jobs); close a random in-flight client connection. With `failover` among the
kinds, Redis is a Sentinel group instead (bench/redis_chaos.py: primary, replica, three
sentinels, 3 s down-after, the clients' grace 10 s as in k8s production): a restart hits the
primary, and a failover (one per bag) SIGKILLs it, waits for the promotion and starts it again
as a replica. The report puts each client error down to the chaos kind it followed and gives
each failover's recovery time (kill to the first answer to a request sent after it).
Progress and the chaos timeline go to stderr; the report to stdout. The run ends when every
request has ended or after --seconds (start-up included), and always cleans up (also on Ctrl-C /
SIGTERM).

How to read the output (one line per request class; every request lands in exactly one):

- answered completely: the text is exactly `answer:<its marker>.`, stop_reason end_turn (and for
  streams message_stop was seen and the SSE ids `job:seq` ran 1, 2, 3, ... with no repeat).
- failed with a proper error: an HTTP error with Anthropic error JSON, or an SSE `event: error`
  with it. Expected under chaos (e.g. "worker stopped mid-answer", "queue unavailable"); the
  error types and messages are listed below the table.
- lost: neither an answer nor a proper error (connection reset, a stream that just ends, an
  empty 200, an error without the Anthropic JSON).  -> a bug
- duplicated: the marker twice in the text, two message_starts, or a repeated/backwards SSE
  seq id.  -> a bug
- hung: no end within the 90 s client timeout.  -> a bug
- dropped by chaos: we closed the connection on purpose; not a failure.
- mismatched: an end that claims success but with wrong text/stop reason or a seq gap. -> a bug
- cut off / not sent: still running or not started when --seconds ran out (say so, not a bug
  by itself; rerun with more time).
- orphan CLI processes: `claude` processes of this run (exe = the CLI, our upstream in their
  environment) still alive after every ccfleet process stopped and a 3 s grace.  -> a bug
- upstream retries: markers that reached the upstream more than once (a job re-run on another
  worker after its worker died before answering). Reported, not an error.
- info rows (not in the bar): CLIs still alive 3 s after their worker was SIGKILLed (they should
  die with it, PR_SET_PDEATHSIG); ccfleet processes that exited without being killed (replaced,
  and listed); per-job workspaces left in the work root (a SIGKILLed worker cannot remove its).
- below the table: the proper errors by type and message, with when those requests ended
  (compare with the chaos timeline) and how many had been queued as a job (the others were
  refused at submission); with --verbose, one line per request.

The bar is "0 lost, 0 duplicated, 0 hung, 0 orphans" (mismatched counts against it too):
PASS/FAIL. The exit code is 0 either way (this is a report). For every request that broke the
bar, its job id, job record and journal in Redis, and the log lines mentioning it are printed;
the temp dir with every process's log (api*.log, worker*.log) is then kept and its path printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
import redis as redis_sync

from bench.redis_chaos import (
    ChaosEvent,
    SentinelRedis,
    SingleRedis,
    SoakRedis,
    attribute,
    recovery_s,
)
from ccfleet.embedded_redis import free_port
from shared.broker import redis_keys
from shared.stream.journal import raw_chunks
from tests.fakes.upstream import FakeUpstream, RecordedRequest, TextReply
from tests.processes import ManagedProcess, cli_processes, http_ok, wait_until

REPO = Path(__file__).resolve().parent.parent
MODEL = "claude-sonnet-5-5"
APIS = 2
WORKERS = 3
WORKER_SLOTS = 2
CLIENT_TIMEOUT_S = 90.0
CHUNK_CHARS = 3
ORPHAN_GRACE_S = 3.0
MAX_BACKOFF_S = 5.0
KILL_CHECK_S = 3.0  # after a worker kill: do its CLIs outlive it?
KILL_SETTLE_S = 8.0  # after a worker kill, errors it causes: the heartbeat TTL (5 s) and checks
MARKER_RE = re.compile(r"soak\d{3}x[0-9a-f]{8}")
BAR_BREAKERS = ("lost", "duplicated", "hung", "mismatched")
OUTCOMES = {
    "answered": "answered completely",
    "failed": "failed with a proper error",
    "lost": "lost (no answer, no error)",
    "duplicated": "duplicated",
    "hung": f"hung (client timeout {CLIENT_TIMEOUT_S:.0f} s)",
    "dropped": "dropped by chaos (we closed it)",
    "mismatched": "mismatched (wrong text / seq gap)",
    "cut_off": "cut off at --seconds",
    "not_sent": "not sent (time ran out)",
}

JsonDict = dict[str, Any]


def expected_text(marker: str) -> str:
    return f"answer:{marker}."


def now() -> float:
    return time.monotonic()


# -- the requests ---------------------------------------------------------------------------


@dataclass
class Plan:
    index: int
    marker: str
    stream: bool
    api: int
    delay_s: float  # the upstream's whole reply takes this long


@dataclass
class Result:
    plan: Plan
    outcome: str = "not_sent"
    detail: str = ""
    status: int | None = None
    request_id: str | None = None
    job_ids: set[str] = field(default_factory=set)
    started: float | None = None
    finished: float | None = None
    cancel_reason: str | None = None  # "dropped" / "cut_off": set just before we cancel
    error_type: str = ""
    error_message: str = ""
    retry_after_s: float = 0.0  # an HTTP error's retry-after header

    def set(self, outcome: str, detail: str = "") -> None:
        self.outcome = outcome
        self.detail = detail


def request_body(plan: Plan) -> JsonDict:
    text = f"Reply with exactly this and nothing else: {plan.marker}"
    return {
        "model": MODEL,
        "max_tokens": 256,
        "stream": plan.stream,
        "messages": [{"role": "user", "content": text}],
    }


def proper_error(raw: bytes | str) -> tuple[str, str] | None:
    """(type, message) if `raw` is Anthropic error JSON, else None."""
    try:
        body = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict) or body.get("type") != "error":
        return None
    error = body.get("error")
    if not isinstance(error, dict):
        return None
    kind, message = error.get("type"), error.get("message")
    if not isinstance(kind, str) or not isinstance(message, str) or not kind:
        return None
    return kind, message


def record_error(result: Result, raw: bytes | str, where: str) -> None:
    found = proper_error(raw)
    if found is None:
        shown = raw[:160] if isinstance(raw, str) else raw[:160].decode(errors="replace")
        result.set("lost", f"{where} without Anthropic error JSON: {shown!r}")
        return
    result.error_type, result.error_message = found
    result.set("failed", f"{where}: {found[0]}: {found[1]}")


@dataclass
class SseStream:
    """What a streamed reply carried, checked event by event."""

    marker: str
    job_ids: set[str] = field(default_factory=set)
    last_seq: int = 0
    seq_problems: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    text: str = ""
    starts: int = 0
    stop_reason: str | None = None
    message_stop: bool = False
    error: str | None = None  # the raw data of an `event: error`
    after_end: int = 0  # events after message_stop / error
    events: int = 0
    # the event being read
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> None:
        if not line:
            self._dispatch()
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value

    def _dispatch(self) -> None:
        event, data, event_id = self._event, "\n".join(self._data), self._id
        self._event, self._data, self._id = "", [], None
        if not event and not data:
            return
        if event == "ping":
            return
        self.events += 1
        if self.message_stop or self.error is not None:
            self.after_end += 1
        if event_id is not None:
            self._check_id(event_id)
        if event == "error":
            self.error = data
            return
        try:
            payload = json.loads(data)
        except ValueError:
            self.seq_problems.append(f"unparseable data in {event!r}")
            return
        self._take(event, payload)

    def _take(self, event: str, payload: JsonDict) -> None:
        """What one (parsed) Messages stream event adds to the reply."""
        if event == "message_start":
            self.starts += 1
        elif event == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.text += str(delta.get("text", ""))
        elif event == "message_delta":
            self.stop_reason = (payload.get("delta") or {}).get("stop_reason")
        elif event == "message_stop":
            self.message_stop = True

    def _check_id(self, event_id: str) -> None:
        job_id, _, raw_seq = event_id.rpartition(":")
        self.job_ids.add(job_id)
        if not raw_seq.isdigit():
            self.seq_problems.append(f"bad id {event_id!r}")
            return
        seq = int(raw_seq)
        if seq <= self.last_seq:
            self.seq_problems.append(f"seq {seq} after {self.last_seq}")
        elif seq != self.last_seq + 1:
            self.gaps.append(f"seq {seq} after {self.last_seq}")
        self.last_seq = max(self.last_seq, seq)

    def classify(self, result: Result, ended_by: str) -> None:
        result.job_ids |= self.job_ids
        expected = expected_text(self.marker)
        if (
            self.text.count(self.marker) > 1
            or self.starts > 1
            or self.seq_problems
            or len(self.job_ids) > 1
        ):
            problems = [*self.seq_problems, f"message_starts={self.starts}"]
            if len(self.job_ids) > 1:
                problems.append(f"job ids {sorted(self.job_ids)}")
            result.set("duplicated", f"text={self.text!r}; {'; '.join(problems)}")
        elif self.error is not None:
            record_error(result, self.error, f"event: error after {self.events - 1} events")
            if ended_by != "stream ended":
                result.detail += f" (then {ended_by})"
        elif self.message_stop:
            if self.text == expected and self.stop_reason == "end_turn" and not self.gaps:
                if self.after_end:
                    result.set("mismatched", f"{self.after_end} events after message_stop")
                else:
                    result.set("answered")
            else:
                result.set(
                    "mismatched",
                    f"text={self.text!r} stop_reason={self.stop_reason} gaps={self.gaps}",
                )
        else:
            result.set(
                "lost",
                f"{ended_by} after {self.events} events, no message_stop and no error "
                f"(text so far {self.text!r})",
            )


def retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


async def streaming(client: httpx.AsyncClient, url: str, result: Result) -> None:
    plan = result.plan
    stream = SseStream(plan.marker)
    try:
        async with client.stream("POST", f"{url}/v1/messages", json=request_body(plan)) as r:
            result.status = r.status_code
            result.request_id = r.headers.get("request-id")
            result.retry_after_s = retry_after(r)
            if r.status_code != 200:
                record_error(result, await r.aread(), f"HTTP {r.status_code}")
                return
            content_type = r.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raw = await r.aread()
                result.set("lost", f"200 {content_type!r}, not SSE: {raw[:160]!r}")
                return
            async for line in r.aiter_lines():
                stream.feed(line)
            stream.feed("")
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.TimeoutException):
            raise TimeoutError from exc
        stream.feed("")
        stream.classify(result, f"connection error ({type(exc).__name__}: {exc})")
        return
    stream.classify(result, "stream ended")


async def non_streaming(client: httpx.AsyncClient, url: str, result: Result) -> None:
    plan = result.plan
    try:
        r = await client.post(f"{url}/v1/messages", json=request_body(plan))
    except httpx.TimeoutException as exc:
        raise TimeoutError from exc
    except httpx.TransportError as exc:
        result.set("lost", f"connection error ({type(exc).__name__}: {exc}), no response")
        return
    result.status = r.status_code
    result.request_id = r.headers.get("request-id")
    result.retry_after_s = retry_after(r)
    if r.status_code != 200:
        record_error(result, r.content, f"HTTP {r.status_code}")
        return
    if not r.content:
        result.set("lost", "empty 200")
        return
    try:
        message = r.json()
    except ValueError:
        result.set("lost", f"200 with unparseable body {r.content[:160]!r}")
        return
    if not isinstance(message, dict) or message.get("type") != "message":
        result.set("mismatched", f"200 but not a message: {r.content[:160]!r}")
        return
    blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
    texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
    text = "".join(texts)
    stop_reason = message.get("stop_reason")
    if text.count(plan.marker) > 1 or len(texts) > 1:
        result.set("duplicated", f"{len(texts)} text blocks: {text!r}")
    elif text == expected_text(plan.marker) and stop_reason == "end_turn":
        result.set("answered")
    else:
        result.set("mismatched", f"text={text!r} stop_reason={stop_reason}")


async def run_request(
    result: Result,
    urls: list[str],
    limit: asyncio.Semaphore,
    inflight: dict[int, asyncio.Task[None]],
) -> None:
    async with limit:
        task = asyncio.current_task()
        assert task is not None
        result.started = now()
        inflight[result.plan.index] = task
        timeout = httpx.Timeout(CLIENT_TIMEOUT_S + 10, connect=5.0)
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, trust_env=False) as client,
                asyncio.timeout(CLIENT_TIMEOUT_S),
            ):
                url = urls[result.plan.api]
                if result.plan.stream:
                    await streaming(client, url, result)
                else:
                    await non_streaming(client, url, result)
        except TimeoutError:
            result.set("hung", f"no end after {CLIENT_TIMEOUT_S:.0f} s")
        except asyncio.CancelledError:
            if result.cancel_reason is None:
                raise
            if result.outcome == "not_sent":  # not classified before the cancel landed
                result.set(result.cancel_reason)
        finally:
            result.finished = now()
            inflight.pop(result.plan.index, None)
        if result.outcome == "failed" and result.status != 200:
            # A polite client: the slot honours retry-after before its next request, so a
            # short outage does not burn through the remaining requests in a second.
            await asyncio.sleep(min(result.retry_after_s, MAX_BACKOFF_S))


# -- the fake upstream's side --------------------------------------------------------------


class UpstreamLedger:
    """Answers each marker with its text; remembers when each marker's requests arrived."""

    def __init__(self, plans: list[Plan]) -> None:
        self._delays = {p.marker: p.delay_s for p in plans}
        self._lock = threading.Lock()
        self.arrivals: dict[str, list[float]] = {}
        self.unmarked = 0

    def respond(self, request: RecordedRequest) -> TextReply:
        marker = marker_of(request)
        with self._lock:
            if marker is None:
                self.unmarked += 1
            else:
                self.arrivals.setdefault(marker, []).append(now())
        if marker is None:
            return TextReply("ok")
        text = expected_text(marker)
        chunks = max(1, -(-len(text) // CHUNK_CHARS))
        delay = self._delays.get(marker, 1.0)
        return TextReply(text, chunk_chars=CHUNK_CHARS, delay_s=delay / chunks)


def marker_of(request: RecordedRequest) -> str | None:
    """The marker in the last user message of an upstream request."""
    messages = request.body.get("messages")
    if request.path != "/v1/messages" or not isinstance(messages, list):
        return None
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None
    found = MARKER_RE.search(json.dumps(users[-1].get("content")))
    return found.group(0) if found else None


# -- the stack --------------------------------------------------------------------------------


@dataclass
class ChaosLog:
    t0: float
    worker_kills: int = 0
    redis_restarts: int = 0
    failovers: int = 0
    events: list[ChaosEvent] = field(default_factory=list)
    client_drops: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    cli_outlived_kill: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        line = f"{now() - self.t0:7.1f}s  {text}"
        self.timeline.append(line)
        print(line, file=sys.stderr, flush=True)


class Fleet:
    """Front ends and workers as child processes (as tests/conftest.py's Stack does)."""

    def __init__(self, root: Path, redis: SoakRedis, upstream: FakeUpstream, claude: str):
        self.root = root
        self.redis = redis
        self.upstream = upstream
        self.claude_bin = claude
        self.apis: list[ManagedProcess] = []
        self.api_ports: list[int] = []
        self.workers: list[ManagedProcess] = []
        self.accounts = [f"soak-{chr(ord('a') + i)}" for i in range(WORKERS)]
        self.retired: list[ManagedProcess] = []  # killed or exited: reaped, logs kept
        self._logs = 0

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            **self.redis.env(),
            "CCFLEET_CLAUDE_BIN": self.claude_bin,
            "CCFLEET_WORKER_SLOTS": str(WORKER_SLOTS),
            "CCFLEET_PING_INTERVAL_S": "1",
            "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5",
            "CCFLEET_HEARTBEAT_TTL_S": "5",
            "CCFLEET_JOURNAL_CHECK_S": "0.5",
            "CCFLEET_WORK_ROOT": str(self.root / "work"),
            "CCFLEET_LOG_LEVEL": "INFO",
            "CCFLEET_AUTH": "off",
            "ANTHROPIC_BASE_URL": self.upstream.url,
            "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake-soak-token",
            "CLAUDE_CONFIG_DIR": str(self.root / "claude-config"),
        }
        env.update(overrides)
        return env

    def _log_path(self, role: str) -> Path:
        self._logs += 1
        return self.root / f"{role}-{self._logs:02d}.log"

    def start(self) -> None:
        (self.root / "claude-config").mkdir(exist_ok=True)
        (self.root / "work").mkdir(exist_ok=True)
        for slot in range(WORKERS):
            self.workers.append(self._spawn_worker(slot))
        for index in range(APIS):
            self.api_ports.append(free_port())
            self.apis.append(self._spawn_api(index))

    def _spawn_worker(self, slot: int) -> ManagedProcess:
        return ManagedProcess(
            ["worker"],
            env=self.env(CCFLEET_ACCOUNT=self.accounts[slot]),
            log_path=self._log_path(f"worker{slot}"),
        )

    def _spawn_api(self, index: int) -> ManagedProcess:
        return ManagedProcess(
            ["api", "--port", str(self.api_ports[index])],
            env=self.env(),
            log_path=self._log_path(f"api{index}"),
        )

    def kill_worker(self, slot: int) -> tuple[int, int]:
        """SIGKILL the worker in `slot`, start a replacement; (old pid, new pid)."""
        old = self.workers[slot]
        old.signal(signal.SIGKILL)
        old.proc.wait()
        self._retire(old)
        self.workers[slot] = self._spawn_worker(slot)
        return old.pid, self.workers[slot].pid

    def restart_exited(self, chaos: ChaosLog) -> None:
        """A process that exited without being killed is a finding; replace it."""
        for slot, worker in enumerate(self.workers):
            if (code := worker.proc.poll()) is not None:
                chaos.unexpected_exits.append(f"worker{slot} pid {worker.pid} exited {code}")
                chaos.note(f"UNEXPECTED: worker{slot} pid {worker.pid} exited with {code}")
                self._retire(worker)
                self.workers[slot] = self._spawn_worker(slot)
        for index, api in enumerate(self.apis):
            if (code := api.proc.poll()) is not None:
                chaos.unexpected_exits.append(f"api{index} pid {api.pid} exited {code}")
                chaos.note(f"UNEXPECTED: api{index} pid {api.pid} exited with {code}")
                self._retire(api)
                self.apis[index] = self._spawn_api(index)

    def _retire(self, process: ManagedProcess) -> None:
        process.stop(timeout_s=0.1)
        self.retired.append(process)

    def worker_pids(self) -> set[int]:
        return {w.pid for w in self.workers if w.proc.poll() is None}

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        for url in self.urls:
            wait_until(partial(http_ok, f"{url}/ready"), timeout_s, f"{url}/ready")

    def stop(self) -> None:
        """SIGTERM everything at once (workers are idle by now), then wait for each."""
        running = [*self.apis, *self.workers]
        for process in running:
            process.signal(signal.SIGTERM)
        for process in running:
            process.stop(timeout_s=15.0)
        self.retired += running
        self.apis, self.workers = [], []

    def log_files(self) -> list[Path]:
        return sorted(self.root.glob("*.log"))


def our_clis(claude_bin: str, upstream_url: str) -> list[int]:
    """Running CLI processes started for this run (our upstream in their environment)."""
    needle = f"ANTHROPIC_BASE_URL={upstream_url}".encode()
    pids = []
    for pid in cli_processes(claude_bin):
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                pids.append(pid)
    return pids


def parent_pid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


# -- chaos --------------------------------------------------------------------------------------


async def pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def chaos_loop(
    fleet: Fleet,
    rng: random.Random,
    stop: asyncio.Event,
    chaos: ChaosLog,
    results: list[Result],
    inflight: dict[int, asyncio.Task[None]],
    gaps: tuple[float, float],
    kinds: list[str],
    redis_down: tuple[float, float],
) -> None:
    bag: list[str] = []
    checks: set[asyncio.Task[None]] = set()
    if not {"kill", "redis", "drop", "failover"} & set(kinds):
        await stop.wait()
        return
    try:
        while not stop.is_set():
            await pause(stop, rng.uniform(*gaps))
            if stop.is_set():
                return
            if not bag:
                every = ("kill", "kill", "redis", "drop", "drop", "failover")
                bag = [k for k in every if k in kinds]
                rng.shuffle(bag)
            kind = bag.pop()
            if kind == "kill":
                slot = rng.randrange(WORKERS)
                old, new = fleet.kill_worker(slot)
                chaos.worker_kills += 1
                chaos.note(
                    f"SIGKILL worker{slot} ({fleet.accounts[slot]}) pid {old}; "
                    f"replacement pid {new}"
                )
                chaos.events.append(ChaosEvent("kill", now(), now(), settle_s=KILL_SETTLE_S))
                check = asyncio.create_task(after_kill(fleet, old, chaos))
                checks.add(check)
                check.add_done_callback(checks.discard)
            elif kind == "redis":
                down_s = rng.uniform(*redis_down)
                chaos.note(f"Redis restart: stopping (down for {down_s:.1f} s)")
                began = now()
                await asyncio.to_thread(fleet.redis.restart, down_s)
                chaos.events.append(ChaosEvent("redis", began, now(), f"{down_s:.1f} s down"))
                chaos.redis_restarts += 1
                chaos.note("Redis restart: answering again")
            elif kind == "failover":
                await sentinel_failover(fleet, chaos)
            else:
                started = [
                    i
                    for i, task in inflight.items()
                    if not task.done() and results[i].outcome == "not_sent"
                ]
                if not started:
                    chaos.note("client drop: nothing in flight, skipped")
                    continue
                index = rng.choice(sorted(started))
                results[index].cancel_reason = "dropped"
                inflight[index].cancel()
                chaos.client_drops += 1
                elapsed = now() - (results[index].started or now())
                chaos.note(
                    f"client drop: request {index} "
                    f"({'stream' if results[index].plan.stream else 'json'}) "
                    f"after {elapsed:.1f} s"
                )
    finally:
        for check in list(checks):
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)


async def sentinel_failover(fleet: Fleet, chaos: ChaosLog) -> None:
    assert isinstance(fleet.redis, SentinelRedis)  # main() builds one for `failover`
    chaos.note("Sentinel failover: SIGKILL the primary")
    began = now()
    promoted_s = await asyncio.to_thread(fleet.redis.failover)
    chaos.events.append(ChaosEvent("failover", began, now(), f"promoted in {promoted_s:.1f} s"))
    chaos.failovers += 1
    chaos.note(f"Sentinel failover: replica promoted after {promoted_s:.1f} s; old primary back")


async def after_kill(fleet: Fleet, worker_pid: int, chaos: ChaosLog) -> None:
    """CLIs of a killed worker die with it (PR_SET_PDEATHSIG): check a few seconds later."""
    await asyncio.sleep(KILL_CHECK_S)
    alive = fleet.worker_pids()
    strays = [
        pid
        for pid in our_clis(fleet.claude_bin, fleet.upstream.url)
        if parent_pid(pid) not in alive
    ]
    if strays:
        chaos.cli_outlived_kill.append(f"worker pid {worker_pid}: CLI pids {strays}")
        chaos.note(f"{len(strays)} CLI(s) outlived killed worker pid {worker_pid}: {strays}")


async def watch_exits(fleet: Fleet, stop: asyncio.Event, chaos: ChaosLog) -> None:
    while not stop.is_set():
        fleet.restart_exited(chaos)
        await pause(stop, 0.5)


# -- the run ---------------------------------------------------------------------------------


def make_plans(count: int, rng: random.Random) -> list[Plan]:
    return [
        Plan(
            index=i,
            marker=f"soak{i:03d}x{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}",
            stream=rng.random() < 0.5,
            api=rng.randrange(APIS),
            delay_s=rng.uniform(0.5, 4.0),
        )
        for i in range(count)
    ]


async def soak(
    args: argparse.Namespace, fleet: Fleet, results: list[Result], chaos: ChaosLog
) -> None:
    rng = random.Random(args.seed + 1)
    stop = asyncio.Event()
    inflight: dict[int, asyncio.Task[None]] = {}
    limit = asyncio.Semaphore(args.concurrency)
    chaos_task = asyncio.create_task(
        chaos_loop(
            fleet,
            rng,
            stop,
            chaos,
            results,
            inflight,
            (args.chaos_min, args.chaos_max),
            args.chaos.split(","),
            args.redis_down,
        )
    )
    watch_task = asyncio.create_task(watch_exits(fleet, stop, chaos))
    tasks = [asyncio.create_task(run_request(r, fleet.urls, limit, inflight)) for r in results]
    remaining = args.seconds - (now() - chaos.t0)
    try:
        _, pending = await asyncio.wait(tasks, timeout=max(1.0, remaining))
        if pending:
            chaos.note(f"--seconds reached: {len(pending)} requests unfinished")
            for result in results:
                if result.started is not None and result.finished is None:
                    result.cancel_reason = "cut_off"
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        stop.set()
        # A Redis restart in progress completes (Redis must be up to read the records).
        await asyncio.gather(chaos_task, watch_task, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class JobInfo:
    job_id: str
    status: str
    attempt: str
    worker: str
    journal: list[str]  # "seq kind/event" of each chunk


def read_jobs(redis_url: str) -> dict[str, list[JobInfo]]:
    """marker -> the job records in Redis whose request carries it (with their journals)."""
    client = redis_sync.Redis.from_url(redis_url, socket_timeout=5)
    jobs: dict[str, list[JobInfo]] = {}
    try:
        for raw_key in client.scan_iter(match=f"{redis_keys.PREFIX}:job:job_*", count=1000):
            key = raw_key.decode()
            if key.count(":") != 2:
                continue
            record: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
            payload = record.get(b"payload", b"").decode(errors="replace")
            found = MARKER_RE.search(payload)
            if not found:
                continue
            job_id = key.rsplit(":", 1)[1]
            journal = []
            entries = client.xrange(redis_keys.job_journal(job_id))
            for raw in raw_chunks(entries):  # type: ignore[arg-type]  # sync client: a list
                chunk = json.loads(raw)
                journal.append(f"{chunk['seq']} {chunk.get('event') or chunk['kind']}")
            jobs.setdefault(found.group(0), []).append(
                JobInfo(
                    job_id=job_id,
                    status=record.get(b"status", b"?").decode(),
                    attempt=record.get(b"attempt", b"?").decode(),
                    worker=record.get(b"worker", b"").decode(),
                    journal=journal,
                )
            )
    finally:
        client.close()
    return jobs


def redis_answers(url: str) -> bool:
    client = redis_sync.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis_sync.RedisError:
        return False
    finally:
        client.close()


def log_lines(files: list[Path], needles: list[str], limit: int = 25) -> list[str]:
    found = []
    for path in files:
        with contextlib.suppress(OSError), path.open(errors="replace") as handle:
            for line in handle:
                if any(n in line for n in needles):
                    found.append(f"    {path.name}: {line.rstrip()[:300]}")
    return found[-limit:]


def print_summary(
    args: argparse.Namespace,
    results: list[Result],
    chaos: ChaosLog,
    orphans: list[int],
    upstream: FakeUpstream,
    ledger: UpstreamLedger,
    jobs: dict[str, list[JobInfo]],
    fleet: Fleet,
    wall_s: float,
    leftover_workspaces: int,
) -> bool:
    counts = Counter(r.outcome for r in results)
    per_marker = Counter(m for r in upstream.requests if (m := marker_of(r)) is not None)
    disconnected = Counter(
        m for r in upstream.requests if r.disconnected and (m := marker_of(r)) is not None
    )
    retried = {m: n for m, n in per_marker.items() if n > 1}
    bar_ok = all(counts[k] == 0 for k in BAR_BREAKERS) and not orphans

    print()
    print(_headline(args, results))
    rows = [
        *_outcome_rows(results, counts),
        ("orphan CLI processes (after stop + grace)", str(len(orphans))),
        ("chaos: worker kills (SIGKILL + replace)", str(chaos.worker_kills)),
        ("chaos: Redis restarts (same port + AOF)", str(chaos.redis_restarts)),
        ("chaos: Sentinel failovers", str(chaos.failovers)),
        ("chaos: client drops", str(chaos.client_drops)),
        (
            "upstream requests with a marker / without",
            f"{sum(per_marker.values())} / {ledger.unmarked}",
        ),
        ("upstream retries (markers sent upstream >1x)", str(len(retried))),
        ("info: CLIs outliving a killed worker (3 s)", str(len(chaos.cli_outlived_kill))),
        ("info: unexpected process exits", str(len(chaos.unexpected_exits))),
        ("info: job workspaces left in work root", str(leftover_workspaces)),
        ("wall time", f"{wall_s:.1f} s"),
    ]
    _print_table(rows)
    verdict = "PASS" if bar_ok else "FAIL"
    print(f'bar "0 lost, 0 duplicated, 0 hung, 0 orphans" (and 0 mismatched): {verdict}')

    _print_errors(results, chaos.t0)
    _print_errors_by_kind(results, chaos)
    if args.verbose:
        _print_each_request(results, chaos.t0)
    _print_retries(results, retried, disconnected)
    _print_dropped_ran_on(results, ledger)
    _print_process_trouble(chaos, orphans)
    _print_bar_breakers(results, jobs, fleet, per_marker, disconnected)
    print("\nchaos timeline (s since start):", *chaos.timeline, sep="\n  ")
    print(
        f"\nbar: {verdict}  (lost {counts['lost']}, duplicated {counts['duplicated']}, "
        f"hung {counts['hung']}, mismatched {counts['mismatched']}, "
        f"orphans {len(orphans)})"
    )
    return bar_ok


def _headline(args: argparse.Namespace, results: list[Result]) -> str:
    streams = sum(r.plan.stream for r in results)
    return (
        f"ccfleet soak: {len(results)} requests ({streams} streaming, "
        f"{len(results) - streams} non-streaming), {APIS} front ends, {WORKERS} workers x "
        f"{WORKER_SLOTS} slots, concurrency {args.concurrency}, seed {args.seed}, "
        f"nproc {os.cpu_count()}"
    )


def _outcome_rows(results: list[Result], counts: Counter[str]) -> list[tuple[str, str]]:
    """The request classes' rows; cut off and not sent only when there were such requests."""
    rows: list[tuple[str, str]] = [("sent", str(sum(r.outcome != "not_sent" for r in results)))]
    for key, label in OUTCOMES.items():
        if key in ("cut_off", "not_sent") and not counts[key]:
            continue
        rows.append((label, str(counts[key])))
    return rows


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows) + 2
    print("-" * (width + 8))
    for label, value in rows:
        print(f"{label:<{width}}{value:>8}")
    print("-" * (width + 8))


def _print_errors(results: list[Result], t0: float) -> None:
    """The proper errors by type and message, with when those requests ended."""
    errors: dict[str, list[Result]] = {}
    for r in results:
        if r.outcome == "failed":
            errors.setdefault(f"{r.error_type}: {r.error_message}", []).append(r)
    if not errors:
        return
    print("\nproper errors seen (count, when those requests ended: s since start):")
    for text, failed in sorted(errors.items(), key=lambda item: -len(item[1])):
        ends = sorted((r.finished or t0) - t0 for r in failed)
        queued = sum(1 for r in failed if r.job_ids)
        print(
            f"  {len(failed):3d} x {text}  [{ends[0]:.1f}-{ends[-1]:.1f} s; "
            f"{queued} had been queued as a job]"
        )


def _print_errors_by_kind(results: list[Result], chaos: ChaosLog) -> None:
    failures = [
        (r.finished, f"{r.outcome}: {r.error_message or r.detail}".rstrip(": "))
        for r in results
        if r.finished is not None and r.outcome in ("failed", *BAR_BREAKERS)
    ]
    found = attribute(chaos.events, failures)
    print("\nclient errors by the chaos kind they followed (its window + settling time):")
    for kind in ("kill", "redis", "failover", "drop", "none"):
        errors = found.errors.get(kind, [])
        if kind != "none" and kind not in found.events:
            continue
        events = found.events.get(kind, 0)
        print(f"  {kind:9} {len(errors):3} errors after {events} events  {Counter(errors) or ''}")
    answered = [
        (r.started, r.finished)
        for r in results
        if r.outcome == "answered" and r.started is not None and r.finished is not None
    ]
    for event in chaos.events:
        if event.kind == "redis":
            print(f"  restart at {event.start - chaos.t0:6.1f} s, {event.detail}")
        if event.kind == "failover":
            recovered = recovery_s(event, answered)
            shown = f"{recovered:.1f} s" if recovered is not None else "none answered after"
            print(
                f"  failover at {event.start - chaos.t0:6.1f} s: {event.detail}; "
                f"first answer to a request sent after the kill: {shown}"
            )


def _print_each_request(results: list[Result], t0: float) -> None:
    print("\nevery request (start/end: s since start):")
    for r in results:
        start = (r.started or t0) - t0
        end = (r.finished or t0) - t0
        print(
            f"  {r.plan.index:3d} {'stream' if r.plan.stream else 'json  '} "
            f"api{r.plan.api} {start:6.1f} {end:6.1f} {r.outcome:<10} "
            f"{sorted(r.job_ids) or ''} {r.detail[:150]}"
        )


def _print_retries(
    results: list[Result], retried: dict[str, int], disconnected: Counter[str]
) -> None:
    if not retried:
        return
    print("\nupstream retries (marker: upstream requests, of them disconnected):")
    by_marker = {r.plan.marker: r for r in results}
    for marker, n in sorted(retried.items()):
        outcome = by_marker[marker].outcome if marker in by_marker else "?"
        print(f"  {marker}: {n}, {disconnected[marker]} disconnected -> {outcome}")


def _print_dropped_ran_on(results: list[Result], ledger: UpstreamLedger) -> None:
    """Dropped requests whose job still reached the upstream well after the drop."""
    dropped_ran_on = [
        r.plan.marker
        for r in results
        if r.outcome == "dropped"
        and r.finished is not None
        and any(t > r.finished + 2.0 for t in ledger.arrivals.get(r.plan.marker, []))
    ]
    if dropped_ran_on:
        print(
            f"\nnote: dropped requests whose job still reached the upstream >2 s after the "
            f"drop (cancel did not stop them): {dropped_ran_on}"
        )


def _print_process_trouble(chaos: ChaosLog, orphans: list[int]) -> None:
    if chaos.unexpected_exits:
        print("\nunexpected process exits:", *chaos.unexpected_exits, sep="\n  ")
    if chaos.cli_outlived_kill:
        print("\nCLIs outliving a killed worker:", *chaos.cli_outlived_kill, sep="\n  ")
    if orphans:
        print(f"\norphan CLI pids (killed now): {orphans}")


def _print_bar_breakers(
    results: list[Result],
    jobs: dict[str, list[JobInfo]],
    fleet: Fleet,
    per_marker: Counter[str],
    disconnected: Counter[str],
) -> None:
    """Each request that broke the bar: its jobs, their journals and its log lines."""
    bad = [r for r in results if r.outcome in BAR_BREAKERS]
    if not bad:
        return
    print("\nrequests that broke the bar:")
    files = fleet.log_files()
    for r in bad:
        job_infos = jobs.get(r.plan.marker, [])
        job_ids = sorted(r.job_ids | {j.job_id for j in job_infos})
        took = (r.finished or 0) - (r.started or 0)
        print(
            f"- request {r.plan.index} {r.outcome.upper()} "
            f"({'stream' if r.plan.stream else 'json'}, api{r.plan.api}, "
            f"upstream delay {r.plan.delay_s:.1f} s, took {took:.1f} s, "
            f"status {r.status}, request-id {r.request_id}, jobs {job_ids or '?'})"
        )
        print(f"  {r.detail}")
        print(
            f"  upstream requests for {r.plan.marker}: {per_marker[r.plan.marker]} "
            f"({disconnected[r.plan.marker]} disconnected)"
        )
        for info in job_infos:
            print(
                f"  job {info.job_id}: status={info.status} attempt={info.attempt} "
                f"worker={info.worker or '-'} journal=[{', '.join(info.journal)}]"
            )
        needles = [*job_ids, *([r.request_id] if r.request_id else [])]
        lines = log_lines(files, needles) if needles else []
        print(*(lines or ["    (no log lines found)"]), sep="\n")


def seconds_range(raw: str) -> tuple[float, float]:
    low, _, high = raw.partition("-")
    try:
        values = (float(low), float(high or low))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {raw!r}") from exc
    if not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {raw!r}")
    return values


def default_claude_bin() -> str:
    """$CCFLEET_TEST_CLAUDE_BIN, else the pinned CLI tests/run.sh installs, else `claude`."""
    if from_env := os.environ.get("CCFLEET_TEST_CLAUDE_BIN"):
        return from_env
    with contextlib.suppress(OSError, KeyError, tomllib.TOMLDecodeError):
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
        version = pyproject["tool"]["ccfleet"]["claude-code-version"]
        pinned = Path.home() / f".cache/ccfleet/claude-code-{version}/node_modules/.bin/claude"
        if pinned.exists():
            return str(pinned)
    return shutil.which("claude") or "claude"


def parse_args() -> argparse.Namespace:
    """The command line, checked; `--claude-bin` made absolute."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=240.0, help="bound on the whole run")
    parser.add_argument("--claude-bin", default=default_claude_bin())
    parser.add_argument("--concurrency", type=int, default=6, help="requests in flight at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chaos-min", type=float, default=2.0, help="shortest gap, seconds")
    parser.add_argument("--chaos-max", type=float, default=6.0, help="longest gap, seconds")
    parser.add_argument(
        "--chaos", default="kill,redis,drop", help="kinds of chaos (comma list; empty: none)"
    )
    parser.add_argument(
        "--redis-down",
        type=seconds_range,
        default=(0.0, 2.0),
        help="how long Redis stays down in a restart: MIN-MAX seconds (default 0-2)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir even on PASS")
    parser.add_argument("--verbose", action="store_true", help="print one line per request")
    args = parser.parse_args()
    if not (found := shutil.which(args.claude_bin)):
        parser.error(f"no claude CLI at {args.claude_bin!r}: give --claude-bin PATH")
    args.claude_bin = os.path.abspath(found)
    if args.requests < 1 or args.requests > 1000 or args.concurrency < 1:
        parser.error("--requests must be 1..1000 and --concurrency at least 1")
    if unknown := set(args.chaos.split(",")) - {"kill", "redis", "drop", "failover", ""}:
        parser.error(f"--chaos: unknown kinds {sorted(unknown)}; use kill, redis, drop, failover")
    if not 0 < args.chaos_min <= args.chaos_max:
        parser.error("--chaos-min must be > 0 and <= --chaos-max")
    return args


def kill_our_clis(claude_bin: str, upstream_url: str) -> list[int]:
    """SIGKILL the CLIs of this run still alive; their pids."""
    pids = our_clis(claude_bin, upstream_url)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def main() -> None:
    args = parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM):  # both clean up as Ctrl-C does
        signal.signal(signum, signal.default_int_handler)

    t0 = now()
    rng = random.Random(args.seed)
    plans = make_plans(args.requests, rng)
    results = [Result(plan) for plan in plans]
    ledger = UpstreamLedger(plans)
    root = Path(tempfile.mkdtemp(prefix="ccfleet-soak-"))
    sentinels = "failover" in args.chaos.split(",")
    redis: SoakRedis = SentinelRedis(root) if sentinels else SingleRedis(root)
    upstream = FakeUpstream()
    fleet = Fleet(root, redis, upstream, args.claude_bin)
    chaos = ChaosLog(t0=t0)
    keep = args.keep
    try:
        redis.start()
        upstream.start()
        upstream.set_responder(ledger.respond)
        fleet.start()
        print(
            f"soak: logs in {root}; waiting for {APIS} front ends and {WORKERS} workers",
            file=sys.stderr,
            flush=True,
        )
        fleet.wait_ready()
        chaos.t0 = t_start = now()
        chaos.note(f"stack ready after {t_start - t0:.1f} s; sending {args.requests} requests")
        args.seconds -= t_start - t0  # the bound covers start-up too
        asyncio.run(soak(args, fleet, results, chaos))
        wall_s = now() - t_start
        if isinstance(redis, SingleRedis) and not redis_answers(redis.url()):  # cut short
            redis.start()
        jobs = read_jobs(redis.url())
        for result in results:
            result.job_ids |= {info.job_id for info in jobs.get(result.plan.marker, [])}
        fleet.stop()
        time.sleep(ORPHAN_GRACE_S)
        orphans = kill_our_clis(args.claude_bin, upstream.url)
        leftovers = sum(1 for _ in (root / "work").iterdir())
        ok = print_summary(
            args, results, chaos, orphans, upstream, ledger, jobs, fleet, wall_s, leftovers
        )
        keep = keep or not ok
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        counts = Counter(r.outcome for r in results)
        print(f"partial: {dict(counts)}", file=sys.stderr)
    except Exception:
        keep = True
        for proc in [*fleet.apis, *fleet.workers]:
            print(f"--- {proc.log_path.name}\n{proc.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            fleet.stop()
            kill_our_clis(args.claude_bin, upstream.url)
            upstream.stop()
            redis.stop()
        if keep:
            print(f"\nkept the temp dir (process logs, Redis data): {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
