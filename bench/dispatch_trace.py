"""The dispatch path in Redis commands: what each request costs from its POST to the CLI hand-off.

`uv run python bench/dispatch_trace.py [--requests 12] [--show 1] [--env NAME=VALUE]`

Starts a private stack as bench/ttft.py does (embedded Redis, the fake upstream, one worker
keeping one ready CLI of the zero-cost fake CLI, one front end), watches Redis with MONITOR,
and sends requests one at a time. For each, the commands Redis received between the client's
send and the worker's hand-off (the job record's `handed_off_at_ms`; MONITOR stamps commands
with the same clock) are counted by sender: the front end (FE), the worker (W); a pipeline or
a script is one round trip. Counts do not depend on the machine's load; the times between the
path's four steps (from MONITOR's stamps) do, and are printed as median (min-max).
`--show N` lists the first N requests' commands with their times from the send.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import httpx
import redis as redis_lib

from bench.spread import machine_line
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
from tests.fakes import fake_cli
from tests.fakes.upstream import FakeUpstream
from tests.processes import ManagedProcess, http_ok, wait_until

_MONITOR_LINE = re.compile(r"^\+?(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")


@dataclass(frozen=True)
class Command:
    at: float  # epoch seconds, Redis's clock
    sender: str  # FE, W, lua (run by a script), or ? (another client)
    text: str
    connection: str  # the client's address and port

    @property
    def verb(self) -> str:
        return self.text.split(" ", 1)[0].strip('"').upper()


class Monitor:
    """Every command Redis runs, read on a thread from a MONITOR connection."""

    def __init__(self, redis_url: str) -> None:
        host, _, port = redis_url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
        self._socket = socket.create_connection((host, int(port)))
        self._socket.sendall(b"MONITOR\r\n")
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._raw: list[tuple[float, str, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                data = self._socket.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                return
            *lines, buffer = (buffer + data).split(b"\r\n")
            for line in lines:
                if found := _MONITOR_LINE.match(line.decode(errors="replace")):
                    self._raw.append((float(found[1]), found[2], found[3]))

    def stop(self, senders: dict[int, str]) -> list[Command]:
        """What it read, each command named by its sender (`senders`: by local port)."""
        self._stop.set()
        self._thread.join(2)
        self._socket.close()
        return [
            Command(at, _sender(client, senders), text, client) for at, client, text in self._raw
        ]


def _sender(client: str, senders: dict[int, str]) -> str:
    if client == "lua":
        return "lua"
    return senders.get(int(client.rpartition(":")[2]), "?")


def local_ports(pids: dict[int, str]) -> dict[int, str]:
    """The local TCP ports of each process's sockets, named as in `pids`."""
    inodes: dict[str, str] = {}
    for pid, name in pids.items():
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = name
    ports: dict[int, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports[int(fields[1].rpartition(":")[2], 16)] = inodes[fields[9]]
    return ports


_SAME_WRITE_S = 50e-6
"""Commands of one connection closer than this came in one write (a pipeline): a round trip
on loopback takes several times as long."""


def round_trips(commands: list[Command], sender: str) -> int:
    """`sender`'s round trips: a script is one (its commands are `lua`'s), so is a pipeline
    (MULTI ... EXEC, or commands of one connection that came in one write)."""
    count = 0
    last: dict[str, float] = {}
    in_multi: set[str] = set()
    for command in commands:
        if command.sender != sender:
            continue
        conn = command.connection
        pipelined = command.at - last.get(conn, -1.0) < _SAME_WRITE_S
        if command.verb == "MULTI":
            in_multi.add(conn)
        elif command.verb == "EXEC":
            in_multi.discard(conn)
        if not (pipelined or (conn in in_multi and command.verb != "MULTI")):
            count += 1
        last[conn] = command.at
    return count


@dataclass
class Trace:
    sent: float
    enqueued: float
    handed_off: float
    commands: list[Command]

    def first(self, sender: str, prefix: str, contains: str) -> float:
        for command in self.commands:
            if (
                command.sender == sender
                and command.text.startswith(prefix)
                and contains in command.text
            ):
                return command.at
        return math.nan

    def front_end_before(self) -> int:
        submit = self.first("FE", '"EVALSHA"', "arq:job:")
        return round_trips([c for c in self.commands if c.at <= submit], "FE")

    def front_end_after(self) -> int:
        submit = self.first("FE", '"EVALSHA"', "arq:job:")
        return round_trips([c for c in self.commands if c.at > submit], "FE")

    def steps_ms(self) -> dict[str, float]:
        submit = self.first("FE", '"EVALSHA"', "arq:job:")
        claim = self.first("W", '"EVALSHA"', "arq:in-progress:")
        arq_read = self.first("W", '"GET"', "arq:job:")
        ms = 1000.0
        return {
            "send -> queueing starts (front end's checks)": (self.enqueued - self.sent) * ms,
            "queueing starts -> submit script runs": (submit - self.enqueued) * ms,
            "submit script -> claim script (wake-up, pick)": (claim - submit) * ms,
            "claim script -> arq's read of the job": (arq_read - claim) * ms,
            "arq's read -> hand-off": (self.handed_off - arq_read) * ms,
            "dispatch: queueing starts -> hand-off": (self.handed_off - self.enqueued) * ms,
        }


def send(client: httpx.Client, url: str) -> tuple[float, str]:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": f"{uuid.uuid4().hex}: hi"}],
    }
    sent = time.time()
    job_id = ""
    with client.stream("POST", f"{url}/v1/messages", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("id:") and not job_id:
                job_id = line[3:].strip().rpartition(":")[0]
            if '"message_stop"' in line:
                break
    return sent, job_id


def traces(redis_url: str, sent: list[tuple[float, str]], commands: list[Command]) -> list[Trace]:
    client = redis_lib.Redis.from_url(redis_url)
    found = []
    try:
        for at, job_id in sent:
            record: dict[bytes, bytes] = client.hgetall(redis_keys.job_record(job_id))  # type: ignore[assignment]  # redis-py 5 types replies sync-or-async
            enqueued = float(record[b"enqueued_at_ms"]) / 1000
            handed_off = float(record[b"handed_off_at_ms"]) / 1000
            window = [c for c in commands if at <= c.at <= handed_off]
            found.append(Trace(at, enqueued, handed_off, window))
    finally:
        client.close()
    return found


def report(found: list[Trace], show: int) -> None:
    for n, trace in enumerate(found[:show]):
        print(f"\nrequest {n + 1}: ms from the send, sender, command")
        for command in trace.commands:
            print(
                f"{(command.at - trace.sent) * 1000:8.2f} {command.sender:>4} {command.text[:110]}"
            )
        print(f"{(trace.handed_off - trace.sent) * 1000:8.2f}      hand-off")
    print(f"\n{len(found)} requests; round trips, median (min-max):")
    rows = {
        "front end, the send -> its submit script (incl.)": [t.front_end_before() for t in found],
        "front end after it, beside the worker (its relay)": [t.front_end_after() for t in found],
        "worker, its claim -> the hand-off": [round_trips(t.commands, "W") for t in found],
        "dispatch: the submit script and the worker's": [1 + round_trips(t.commands, "W")
                                                         for t in found],
    }  # fmt: skip
    for label, counts in rows.items():
        print(f"  {label:<52}{statistics.median(counts):g} ({min(counts)}-{max(counts)})")
    print("times between the steps, ms, median (min-max):")
    steps = [t.steps_ms() for t in found]
    for step in steps[0]:
        values = [s[step] for s in steps if not math.isnan(s[step])]
        if values:
            print(f"  {step:<48}{statistics.median(values):7.2f} "
                  f"({min(values):.2f}-{max(values):.2f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--show", type=int, default=1, help="requests whose commands to list")
    parser.add_argument(
        "--gap-s", type=float, default=1.5, help="between requests (a new ready CLI)"
    )
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ccfleet-dispatch-"))
    redis = EmbeddedRedis(root / "redis")
    upstream = FakeUpstream()
    procs: list[ManagedProcess] = []
    try:
        redis.start()
        upstream.start()
        env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", "CCFLEET_REDIS_URL": redis.url,
            "CCFLEET_CLAUDE_BIN": str(fake_cli.install(root / "claude")),
            "CCFLEET_PREWARM_CLIS": "1", "CCFLEET_RESIDENT_MAX": "0",
            "CCFLEET_PING_INTERVAL_S": "1", "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5",
            "CCFLEET_LOG_LEVEL": "INFO", "CCFLEET_AUTH": "off", "ANTHROPIC_BASE_URL": upstream.url,
            "CCFLEET_WORK_ROOT": str(root / "work"),
        }  # fmt: skip
        env.update(item.split("=", 1) for item in args.env)
        port = free_port()
        procs.append(ManagedProcess(["worker"], env=env, log_path=root / "worker.log"))
        procs.append(ManagedProcess(["api", "--port", str(port)], env=env,
                                    log_path=root / "api.log"))  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{url}/ready"), 60.0, f"{url}/ready")
        print(f"dispatch trace, {args.requests} requests; {machine_line()}", flush=True)
        sent: list[tuple[float, str]] = []
        monitor: Monitor | None = None
        with httpx.Client(timeout=60) as client:
            for n in range(args.requests + 1):  # the first opens the connections
                if n == 1:
                    monitor = Monitor(redis.url)
                time.sleep(args.gap_s)
                result = send(client, url)
                if n:
                    sent.append(result)
        assert monitor is not None
        time.sleep(0.5)
        ports = local_ports({procs[0].pid: "W", procs[1].pid: "FE"})  # pools keep theirs open
        report(traces(redis.url, sent, monitor.stop(ports)), args.show)
    finally:
        for proc in reversed(procs):
            proc.stop()
        upstream.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
